"""`hookline send` and `hookline event`: realistic provider events, signed as the
provider signs them: posted to a stack, or written for `sam local invoke`."""

from __future__ import annotations

import json
import os
import random
import socket
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import click

from hookline.cli.local import SecretsFile
from hookline.cli.options import (
    EXAMPLE_SECRETS,
    Command,
    command_hint,
    data_dir_option,
    fail,
    json_option,
    local_state,
    out,
    project_directory,
    running_local_state,
    shared,
)
from hookline.errors import EXIT_CONFIGURATION, EXIT_UNAVAILABLE, EXIT_USAGE, ConfigurationError
from hookline.simulate.events import Subject, event_types, lifecycle
from hookline.simulate.signing import PROVIDERS, signature_headers, signed_body

DEFAULT_URL = "http://127.0.0.1:3000"


def types_help() -> str:
    """The event types each provider's fixtures cover, for --help (`\\b`: kept as lines)."""
    lines = ["\b", "Event types (EVENT_TYPE) by provider:"]
    for provider in PROVIDERS:
        lines += textwrap.wrap(
            ", ".join(event_types(provider)),
            width=76,
            initial_indent=f"  {provider:<12} ",
            subsequent_indent=" " * 15,
            break_on_hyphens=False,
        )
    return "\n".join(lines)


class MinorUnits(click.ParamType):
    """A whole, non-negative amount in the currency's minor units (2000 is 20.00 USD)."""

    name = "minor units"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(
                    f"{value!r} is not a whole number of minor units (2000 is 20.00)", param, ctx
                )
        if number < 0:
            self.fail(f"{number} is negative", param, ctx)
        return number

    def get_metavar(self, param: click.Parameter) -> str:
        return "MINOR_UNITS"


def _secrets_file(given: Path | None, state: dict[str, Any] | None) -> Path:
    if given is not None:
        return given
    if state is not None:
        return Path(str(state["secrets_file"]))
    return project_directory() / EXAMPLE_SECRETS


def signing_secrets(path: Path, provider: str) -> dict[str, str]:
    """provider → the secret to sign with (the first listed: the current one)."""
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigurationError(
            f"secrets file {path} is not JSON: {error.msg} at line {error.lineno}"
        ) from None
    except OSError as error:
        raise ConfigurationError(f"cannot read secrets file {path}: {error.strerror}") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"secrets file {path} must hold a JSON object")
    secrets = {
        name: value[0]
        for name, value in document.items()
        if isinstance(value, list) and value and isinstance(value[0], str)
    }
    if provider not in secrets:
        raise ConfigurationError(f"{path} has no {provider} secret to sign with")
    return secrets


def _answers(url: str) -> bool:
    """Whether anything accepts a connection at the URL's host and port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=5):
            return True
    except OSError:
        return False


def _subjects(
    rng: random.Random,
    count: int,
    order: str | None,
    amount: int,
    currency: str,
    refund: int | None,
) -> list[Subject]:
    def order_id(index: int) -> str | None:
        if order is None:
            return None
        return order if count == 1 else f"{order}-{index + 1}"

    return [
        Subject.new(
            rng, amount=amount, currency=currency, order_id=order_id(index), refund_amount=refund
        )
        for index in range(count)
    ]


provider_argument = click.argument("provider", type=click.Choice(PROVIDERS), metavar="PROVIDER")


@click.command(
    "send",
    cls=Command,
    short_help="Sign and post realistic provider events, like the provider would.",
    epilog=types_help(),
)
@provider_argument
@click.argument("event_type")
@click.option("--url", help=f"Base URL (default: the running local stack, else {DEFAULT_URL}).")
@click.option("--secrets", type=SecretsFile(), help="JSON file shaped like the webhook secret.")
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Payments (each with every type).",
)
@click.option(
    "--duplicates",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Extra deliveries of each event.",
)
@click.option("--shuffle", is_flag=True, help="Send in random order.")
@click.option("--seed", type=int, help="For a repeatable --shuffle and ids.")
@click.option("--rate", type=click.IntRange(min=1), help="At most this many requests a second.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--amount", type=MinorUnits(), default=2000, show_default=True, help="In minor units."
)
@click.option("--currency", default="USD", show_default=True)
@click.option("--refund", type=MinorUnits(), help="Refund amount (default: the full amount).")
@click.option("--order", help="The shop's order id the payment names (with --count: a prefix).")
@click.option("--forge", is_flag=True, help="Sign with a wrong secret (expect 401).")
@json_option
@data_dir_option
def send_command(
    provider: str,
    event_type: str,
    url: str | None,
    secrets: Path | None,
    count: int,
    duplicates: int,
    shuffle: bool,
    seed: int | None,
    rate: int | None,
    concurrency: int,
    amount: int,
    currency: str,
    refund: int | None,
    order: str | None,
    forge: bool,
) -> None:
    """Sign and post events to the local stack (or --url), as PROVIDER would.

    EVENT_TYPE may list several types, comma-separated: the lifecycle of one payment
    (e.g. payment_intent.created,payment_intent.succeeded,charge.refunded). Exits 1
    when any delivery is not answered 2xx.
    """
    from hookline.simulate.send import (
        THIN_PROVIDERS,
        Progress,
        deliver,
        plan,
        register_sandbox_payments,
    )

    if provider == "khalti" and order is None:
        # Khalti's lookup names no order: a shop binds each payment to one when it starts it.
        fail("a Khalti payment belongs to the order it was started for: pass --order", EXIT_USAGE)
    state = local_state(shared().data_dir)
    if state is None and shared().data_dir is not None and not url:
        # That folder's stack is the one asked for: never post to whatever serves :3000.
        running_local_state(shared().data_dir)
    base = str(url or os.environ.get("HOOKLINE_URL") or (state or {}).get("api_url") or DEFAULT_URL)
    signing = signing_secrets(_secrets_file(secrets, state), provider)
    rng = random.Random(seed)  # noqa: S311 - ids of simulated events, not secrets
    types = [kind.strip() for kind in event_type.split(",") if kind.strip()]
    subjects = _subjects(rng, count, order, amount, currency, refund)
    cycles = [lifecycle(provider, types, subject, rng) for subject in subjects]
    if not _answers(base):
        hint = command_hint("hookline")
        fail(
            f"nothing answers at {base}: start the local stack with `{hint} local` "
            "(or `make run`), or pass --url",
            EXIT_UNAVAILABLE,
        )
    if provider in THIN_PROVIDERS and state is not None and base == state["api_url"]:
        # Thin events: the consumer fetches the payment, from the local stack's sandbox.
        register_sandbox_payments(
            state["sandbox_url"],
            provider,
            subjects,
            database_url=state["database_url"],
            schema=state["database_schema"],
        )
    deliveries = plan(cycles, duplicates=duplicates, shuffle=shuffle, rng=rng)
    summary = deliver(
        base,
        deliveries,
        signing.__getitem__,
        rate=rate,
        concurrency=concurrency,
        forge=forge,
        progress=Progress(len(deliveries)),
    )
    if shared().json:
        out(json.dumps(summary.as_dict()))
    elif len(summary.answers) == 1:
        answer = summary.answers[0]
        out(
            f"{answer.event.provider} {answer.event.event_type} {answer.ledger_id} -> "
            f"{answer.status or answer.error} ({answer.latency_ms:.0f} ms)"
        )
    else:
        out(summary.text())
    if not summary.ok:
        click.get_current_context().exit(1)


@click.command(
    "event",
    cls=Command,
    short_help="Write a freshly signed API Gateway event for `sam local invoke`.",
    epilog=types_help(),
)
@provider_argument
@click.argument("event_type")
@click.option("--secrets", type=SecretsFile(), help="JSON file shaped like the webhook secret.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Default: events/signed-PROVIDER.json; - for stdout.",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Default: events/env.json.",
)
@data_dir_option
def event_command(
    provider: str,
    event_type: str,
    secrets: Path | None,
    output: Path | None,
    env_file: Path | None,
) -> None:
    """Write a signed API Gateway (HTTP API) event for PROVIDER's EVENT_TYPE, and
    events/env.json, for `sam local invoke ReceiverFunction`."""
    from hookline import template
    from hookline.local.api import http_api_event
    from hookline.local.env_file import container_notes, write_env_file
    from hookline.local.wiring import load as load_wiring

    project = project_directory()
    state = local_state(shared().data_dir)
    signing = signing_secrets(_secrets_file(secrets, state), provider)
    rng = random.Random()  # noqa: S311 - ids of simulated events, not secrets
    event = lifecycle(provider, [event_type], Subject.new(rng), rng)[0]
    domain = "local.execute-api.us-east-1.amazonaws.com"
    path = f"/webhooks/{provider}"
    loaded = template.load(project / "template.yaml")
    resolver = template.Resolver(
        loaded, refs={n: n for n in loaded["Resources"]}, placeholder_attributes=True
    )
    found = load_wiring(loaded, resolver, project).route_for("POST", path)
    if found is None:
        fail(f"template.yaml routes no POST {path}", EXIT_CONFIGURATION)
    route, path_parameters = found
    headers = {
        **event.headers,
        **signature_headers(
            event, signing[provider], url=f"https://{domain}{path}", timestamp=int(time.time())
        ),
    }
    api_event = http_api_event(
        route,
        path_parameters,
        method="POST",
        raw_path=path,
        raw_query=urlencode(dict(event.query)),
        headers=list(headers.items()),
        body=signed_body(event, signing[provider]),
        source_ip="192.0.2.10",
        domain_name=domain,
    )
    text = json.dumps(api_event, indent=2) + "\n"
    if output is not None and str(output) == "-":
        out(text, nl=False)
        return
    written = output or project / "events" / f"signed-{provider}.json"
    written.write_text(text)
    environment = write_env_file(env_file or project / "events" / "env.json", state, project)
    out(f"wrote {written} ({provider} {event_type} {event.event_id})")
    invoke = [command_hint("sam"), "local", "invoke", "ReceiverFunction"]
    if project.resolve() != Path.cwd().resolve():
        invoke += ["-t", _shown(project / "template.yaml")]
    invoke += ["-e", _shown(written), "--env-vars", _shown(environment)]
    out("  " + " ".join(invoke))
    for note in container_notes(state):
        out(f"  ({note})")


def _shown(path: Path) -> str:
    """A path as short as it can be typed from here."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
