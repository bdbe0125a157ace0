"""The `hookline` command line: argument parsing here, the work in the modules it names."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode

import psycopg

from hookline import remote, template
from hookline.database import connect, describe
from hookline.deploy import parameter_overrides
from hookline.errors import ConfigurationError, MigrationError
from hookline.files import write_private
from hookline.migrate import default_directory, discover, migrate, pending
from hookline.schema import DEFAULT_SCHEMA, schema_name
from hookline.simulate.events import Subject, UnknownEventType, lifecycle
from hookline.simulate.send import Progress, deliver, plan, register_mercadopago_payments
from hookline.simulate.signing import PROVIDERS, signature_headers
from hookline.template import TEMPLATE_PATH

EXAMPLE_SECRETS = Path("config") / "local-secrets.example.json"


def _migrate(args: argparse.Namespace) -> int:
    if args.stack:
        return _migrate_deployed(args)
    if args.profile or args.region:
        raise ConfigurationError("--profile and --region go with --stack")
    url = args.database_url or os.environ.get("DATABASE_URL")
    if not url:
        print("hookline migrate: set DATABASE_URL or pass --database-url", file=sys.stderr)
        return 2
    try:
        schema = schema_name(
            args.schema
            if args.schema is not None
            else os.environ.get("DATABASE_SCHEMA") or DEFAULT_SCHEMA
        )
        migrations = discover(args.directory)
        # No statement timeout: a person runs it and watches (a role's own, such as
        # docs/deploy.md's 10 s for hookline's, would stop a long migration half way).
        with connect(url, schema, statement_timeout_ms=0, connect_timeout=10) as connection:
            run = pending if args.dry_run else migrate
            todo = run(connection, migrations, schema)
    except MigrationError as error:
        print(f"hookline migrate: {error}", file=sys.stderr)
        return 1
    except psycopg.Error as error:
        print(f"hookline migrate: {describe(error)}", file=sys.stderr)
        return 1
    names = [f"{m.version}_{m.name}" for m in todo]
    return _print_migrated(args, schema, names)


def _print_migrated(args: argparse.Namespace, schema: str, names: list[str]) -> int:
    if args.json:
        print(json.dumps({"schema": schema, "pending" if args.dry_run else "applied": names}))
    elif not names:
        print(f"Schema {schema} is up to date.")
    else:
        verb = "Would apply" if args.dry_run else "Applied"
        print("\n".join(f"{verb} {name} in schema {schema}" for name in names))
    return 0


def _migrate_deployed(args: argparse.Namespace) -> int:
    """The stack's MigrationsFunction runs them, from inside the database's VPC."""
    local_only = [
        option
        for option, value in (
            ("--database-url", args.database_url),
            ("--schema", args.schema),
            ("--directory", args.directory),
        )
        if value is not None
    ]
    if local_only:
        raise ConfigurationError(
            f"{', '.join(local_only)}: the stack's own database, schema and migrations are used"
        )
    invoke = remote.deployed(
        args.stack,
        remote.MIGRATIONS_OUTPUT,
        profile=args.profile,
        region=args.region,
        label="the migrations function",
    )
    answer = invoke({"action": "migrate", "dry_run": args.dry_run})
    if not answer.get("ok"):
        print(f"hookline migrate: {answer.get('error') or answer}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer))
        return 0
    if answer.get("ahead"):
        print(
            f"hookline migrate: schema {answer.get('schema')} has migrations the deployed code"
            f" does not: {', '.join(answer['ahead'])}",
            file=sys.stderr,
        )
    names = answer.get("pending" if args.dry_run else "applied", [])
    return _print_migrated(args, str(answer.get("schema")), list(names))


def project_directory(given: Path | None) -> Path:
    """Where template.yaml is: --project, else the current directory, else this checkout."""
    for candidate in (given, Path.cwd(), TEMPLATE_PATH.parent):
        if candidate is not None and (candidate / "template.yaml").exists():
            return candidate.resolve()
    raise ConfigurationError("no template.yaml here: run from the project or pass --project")


def _local(args: argparse.Namespace) -> int:
    from hookline.local.console import Console
    from hookline.local.stack import LocalOptions, serve

    console = Console(level=args.log_level, json_lines=args.log_format == "json")
    stop = threading.Event()

    def on_signal(number: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            # A second Ctrl-C: the person wants out now.
            os._exit(128 + number)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        project = project_directory(args.project)
        options = LocalOptions(
            project=project,
            secrets_file=(args.secrets or project / EXAMPLE_SECRETS).resolve(),
            data_dir=(args.data_dir or project / ".hookline").resolve(),
            host=args.host,
            port=args.port,
            database_url=args.database_url or os.environ.get("DATABASE_URL") or None,
            schema=(args.schema if args.schema is not None else os.environ.get("DATABASE_SCHEMA")),
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            code=args.code,
            build_dir=args.build_dir,
            parameters=parameter_overrides(list(args.parameter_overrides)),
            schedule_every=args.schedule_every,
        )
        serve(options, console, stop)
    except (ConfigurationError, MigrationError, OSError, ValueError) as error:
        console.error("local", str(error))
        return 2
    return 0


def _add_local(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = commands.add_parser(
        "local",
        help="run the whole pipeline on this machine (moto, PostgreSQL, the functions)",
        description="Serves the webhook API like `sam local start-api`, with SQS, DynamoDB "
        "and Secrets Manager in moto, PostgreSQL from DATABASE_URL or embedded under "
        ".hookline/, and every function wired as template.yaml wires it.",
    )
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    local.add_argument(
        "--secrets",
        type=Path,
        help=f"JSON file shaped like the webhook secret (default: {EXAMPLE_SECRETS})",
    )
    local.add_argument(
        "--database-url",
        help="default: $DATABASE_URL, else an embedded server kept under .hookline/",
    )
    local.add_argument(
        "--schema",
        help="hookline's PostgreSQL schema (default: $DATABASE_SCHEMA, else the template's, "
        f"{DEFAULT_SCHEMA}); the database's other schemas are never touched",
    )
    local.add_argument(
        "--code",
        choices=["auto", "build", "source"],
        default="auto",
        help="run `sam build` output or the source tree (auto: the build when it is "
        "present, current and built for this machine)",
    )
    local.add_argument("--build-dir", type=Path, help="default: .aws-sam/build")
    local.add_argument("--project", type=Path, help="directory holding template.yaml")
    local.add_argument("--data-dir", type=Path, help="default: <project>/.hookline")
    local.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="template parameters, as for sam deploy",
    )
    local.add_argument(
        "--schedule-every",
        type=_positive,
        metavar="SECONDS",
        help="run scheduled functions this often instead of their rate()",
    )
    local.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    local.add_argument("--log-format", default="pretty", choices=["pretty", "json"])
    local.set_defaults(run=_local)


def _local_state(data_dir: Path | None) -> dict[str, Any] | None:
    from hookline.local.stack import read_state

    try:
        directory = data_dir or project_directory(None) / ".hookline"
    except ConfigurationError:
        return None
    return read_state(directory)


def _running_local_state(data_dir: Path | None) -> dict[str, Any]:
    state = _local_state(data_dir)
    if state is None:
        raise ConfigurationError(
            "no local stack is running (start one with `hookline local`), "
            "or name a deployed one with --stack NAME"
        )
    return state


def _secrets_file(given: Path | None, state: dict[str, Any] | None) -> Path:
    if given is not None:
        return given
    if state is not None:
        return Path(str(state["secrets_file"]))
    return project_directory(None) / EXAMPLE_SECRETS


def signing_secrets(path: Path, provider: str) -> dict[str, str]:
    """provider → the secret to sign with (the first listed: the current one)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"cannot read secrets file {path}: {error}") from error
    secrets = {
        name: value[0]
        for name, value in document.items()
        if isinstance(value, list) and value and isinstance(value[0], str)
    }
    if provider not in secrets:
        raise ConfigurationError(f"{path} has no {provider} secret to sign with")
    return secrets


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _subjects(args: argparse.Namespace, rng: random.Random) -> list[Subject]:
    def order(index: int) -> str | None:
        if args.order is None:
            return None
        return args.order if args.count == 1 else f"{args.order}-{index + 1}"

    return [
        Subject.new(
            rng,
            amount=args.amount,
            currency=args.currency,
            order_id=order(index),
            refund_amount=args.refund,
        )
        for index in range(args.count)
    ]


def _send(args: argparse.Namespace) -> int:
    state = _local_state(args.data_dir)
    url = args.url or os.environ.get("HOOKLINE_URL") or (state or {}).get("api_url")
    url = str(url or "http://127.0.0.1:3000")
    secrets = signing_secrets(_secrets_file(args.secrets, state), args.provider)
    rng = random.Random(args.seed)  # noqa: S311 - ids of simulated events, not secrets
    types = [kind.strip() for kind in args.event_type.split(",") if kind.strip()]
    subjects = _subjects(args, rng)
    cycles = [lifecycle(args.provider, types, subject, rng) for subject in subjects]
    if args.provider == "mercadopago" and state is not None and url == state["api_url"]:
        # Thin events: the consumer fetches the payment, from the local stack's sandbox.
        register_mercadopago_payments(state["sandbox_url"], subjects)
    deliveries = plan(cycles, duplicates=args.duplicates, shuffle=args.shuffle, rng=rng)
    summary = deliver(
        url,
        deliveries,
        secrets.__getitem__,
        rate=args.rate,
        concurrency=args.concurrency,
        forge=args.forge,
        progress=Progress(len(deliveries)),
    )
    if args.json:
        print(json.dumps(summary.as_dict()))
    elif len(summary.answers) == 1:
        answer = summary.answers[0]
        print(
            f"{answer.event.provider} {answer.event.event_type} {answer.event.event_id} -> "
            f"{answer.status or answer.error} ({answer.latency_ms:.0f} ms)"
        )
    else:
        print(summary.text())
    return 0 if summary.ok else 1


def _add_send(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "send",
        help="sign and post realistic provider events, like the provider would",
        description="EVENT_TYPE may list several types, comma-separated: a lifecycle of "
        "one payment (e.g. payment_intent.created,payment_intent.succeeded,charge.refunded).",
    )
    send.add_argument("provider", choices=PROVIDERS)
    send.add_argument("event_type", help="e.g. payment_intent.succeeded")
    send.add_argument(
        "--url", help="base URL (default: the running local stack, else http://127.0.0.1:3000)"
    )
    send.add_argument("--secrets", type=Path, help="JSON file shaped like the webhook secret")
    send.add_argument("--data-dir", type=Path, help="the local stack's (default .hookline)")
    send.add_argument("--count", type=_positive, default=1, help="payments (each with every type)")
    send.add_argument("--duplicates", type=_count, default=0, help="extra deliveries of each event")
    send.add_argument("--shuffle", action="store_true", help="send in random order")
    send.add_argument("--seed", type=int, help="for a repeatable --shuffle and ids")
    send.add_argument("--rate", type=_positive, help="at most this many requests per second")
    send.add_argument("--concurrency", type=_positive, default=4)
    send.add_argument("--amount", type=_count, default=2000, help="minor units (default 2000)")
    send.add_argument("--currency", default="USD")
    send.add_argument("--refund", type=int, help="refund amount (default: the full amount)")
    send.add_argument(
        "--order", help="the shop's order id the payment names (with --count: a prefix)"
    )
    send.add_argument("--forge", action="store_true", help="sign with a wrong secret")
    send.add_argument("--json", action="store_true", help="machine-readable summary")
    send.set_defaults(run=_send)


def _event(args: argparse.Namespace) -> int:
    from hookline.local.api import http_api_event
    from hookline.local.wiring import load as load_wiring

    project = project_directory(None)
    state = _local_state(args.data_dir)
    secrets = signing_secrets(_secrets_file(args.secrets, state), args.provider)
    rng = random.Random()  # noqa: S311 - ids of simulated events, not secrets
    event = lifecycle(args.provider, [args.event_type], Subject.new(rng), rng)[0]
    domain = "local.execute-api.us-east-1.amazonaws.com"
    path = f"/webhooks/{args.provider}"
    loaded = template.load(project / "template.yaml")
    resolver = template.Resolver(
        loaded, refs={n: n for n in loaded["Resources"]}, placeholder_attributes=True
    )
    found = load_wiring(loaded, resolver, project).route_for("POST", path)
    if found is None:
        raise ConfigurationError(f"template.yaml routes no POST {path}")
    route, path_parameters = found
    headers = {
        **event.headers,
        **signature_headers(
            event, secrets[args.provider], url=f"https://{domain}{path}", timestamp=int(time.time())
        ),
    }
    api_event = http_api_event(
        route,
        path_parameters,
        method="POST",
        raw_path=path,
        raw_query=urlencode(dict(event.query)),
        headers=list(headers.items()),
        body=event.body,
        source_ip="192.0.2.10",
        domain_name=domain,
    )
    output = args.output or project / "events" / f"signed-{args.provider}.json"
    text = json.dumps(api_event, indent=2) + "\n"
    if str(output) == "-":
        sys.stdout.write(text)
    else:
        output.write_text(text)
        environment = write_env_file(
            args.env_file or project / "events" / "env.json", state, project
        )
        print(f"wrote {output} ({args.provider} {args.event_type} {event.event_id})")
        print(f"  sam local invoke ReceiverFunction -e {output} --env-vars {environment}")
    return 0


def write_env_file(path: Path, state: Mapping[str, Any] | None, project: Path) -> Path:
    """events/env.json for `sam local invoke --env-vars`, one object per function.

    With the local stack running: its resources, reached from Docker through
    host.docker.internal. Without: the template's variables with `<Resource>`
    placeholders to fill in from a deployed stack's outputs.
    """
    document: dict[str, dict[str, str]] = {}
    if state is not None:
        endpoint = str(state["endpoint_url"]).replace("127.0.0.1", "host.docker.internal")
        for name, spec in state["functions"].items():
            document[name] = {**spec["environment"], "AWS_ENDPOINT_URL": endpoint}
    else:
        loaded = template.load(project / "template.yaml")
        resolver = template.Resolver(
            loaded,
            refs={n: f"<{n}>" for n in loaded["Resources"]},
            placeholder_attributes=True,
        )
        for name, found in loaded["Resources"].items():
            if found["Type"] == "AWS::Serverless::Function":
                document[name] = template.function_environment(loaded, name, resolver)
    for environment in document.values():
        # Square's URL is derived from the event's domain, as in AWS.
        environment.pop("SQUARE_NOTIFICATION_URL", None)
    # Owner-only, like the local stack's state file: it holds DATABASE_URL.
    write_private(path, json.dumps(document, indent=2) + "\n")
    return path


def _add_event(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    event = commands.add_parser(
        "event",
        help="write a freshly signed API Gateway event for `sam local invoke`",
    )
    event.add_argument("provider", choices=PROVIDERS)
    event.add_argument("event_type")
    event.add_argument("--secrets", type=Path, help="JSON file shaped like the webhook secret")
    event.add_argument("--data-dir", type=Path, help="the local stack's (default .hookline)")
    event.add_argument(
        "-o", "--output", type=Path, help="default: events/signed-PROVIDER.json; - for stdout"
    )
    event.add_argument("--env-file", type=Path, help="default: events/env.json")
    event.set_defaults(run=_event)


def _reconciler(args: argparse.Namespace) -> remote.Invoke:
    if args.stack:
        return remote.deployed(args.stack)
    state = _running_local_state(args.data_dir)
    return remote.local(state)


def _print(args: argparse.Namespace, answer: Mapping[str, Any], text: str) -> int:
    if not answer.get("ok"):
        print(f"hookline {args.command}: {answer.get('error') or answer}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, default=str) if args.json else text)
    return 0


def _status(args: argparse.Namespace) -> int:
    from hookline import status

    if args.stack:
        # The deployed reconciler reads what the operator's machine may not reach.
        answer = _reconciler(args)({"action": "status"})
        return _print(args, answer, status.render(answer.get("status", {})))
    from hookline.local.stack import aws_clients

    state = _running_local_state(args.data_dir)
    clients = aws_clients(state["endpoint_url"], state["region"])
    target = status.Target(
        state["stack_name"],
        state["queues"],
        clients["sqs"],
        args.database_url or state["database_url"],
        state.get("database_schema", DEFAULT_SCHEMA),
    )
    report = status.collect(target)
    print(json.dumps(report, indent=2) if args.json else status.render(report))
    return 0


def _redrive(args: argparse.Namespace) -> int:
    answer = _reconciler(args)({"action": "redrive"})
    text = f"redriven {answer.get('redriven', 0)}, parked {answer.get('parked', 0)}"
    return _print(args, answer, text)


def _replay(args: argparse.Namespace) -> int:
    request = {
        "action": "replay",
        "event_id": args.event_id,
        "provider": args.provider,
        "type": args.type,
        "since": args.since,
        "until": args.until,
    }
    answer = _reconciler(args)({k: v for k, v in request.items() if v is not None})
    replayed = answer.get("replayed", [])
    text = f"replayed {len(replayed)} (nonce {answer.get('nonce')})" + "".join(
        f"\n  {event_id}" for event_id in replayed
    )
    return _print(args, answer, text)


def _parked(args: argparse.Namespace) -> int:
    invoke = _reconciler(args)
    if args.parked_command == "resolve":
        answer = invoke(
            {"action": "resolve", "id": args.id, "resolution": args.note, "replay": args.replay}
        )
        return _print(args, answer, f"resolved {args.id}")
    if args.parked_command == "show":
        answer = invoke({"action": "parked", "id": args.id})
        return _print(args, answer, json.dumps(answer.get("parked"), indent=2, default=str))
    answer = invoke({"action": "parked"})
    rows = answer.get("parked", [])
    text = "\n".join(
        f"{r['id']:>6}  {r['parked_at']}  {r['provider']} {r['event_id']}  {r['reason']}"
        for r in rows
    )
    return _print(args, answer, text or "no open parked events")


def _stack_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--stack", help="a deployed stack's name (default: the local stack)")
    command.add_argument("--data-dir", type=Path, help="the local stack's (default .hookline)")
    command.add_argument("--json", action="store_true", help="machine-readable output")


def _add_operator(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    redrive = commands.add_parser(
        "redrive", help="move EventsDLQ back to EventsQueue now (parks past MAX_REDRIVES)"
    )
    _stack_options(redrive)
    redrive.set_defaults(run=_redrive)

    replay = commands.add_parser(
        "replay",
        help="re-apply events from the ledger's stored payload, through the same path",
        description="One event (EVENT_ID), or a range (--provider with --type/--since/--until). "
        "Each replay is a new event <id>:replay:<nonce>; see docs/operations.md.",
    )
    replay.add_argument("event_id", nargs="?")
    replay.add_argument("--provider")
    replay.add_argument("--type")
    replay.add_argument("--since", help="ISO 8601, inclusive")
    replay.add_argument("--until", help="ISO 8601, exclusive")
    _stack_options(replay)
    replay.set_defaults(run=_replay)

    parked = commands.add_parser("parked", help="events that need a human: list, show, resolve")
    actions = parked.add_subparsers(dest="parked_command")
    show = actions.add_parser("show", help="one parked event, with its payload")
    show.add_argument("id", type=int)
    _stack_options(show)
    resolve = actions.add_parser("resolve", help="close a parked event with a note")
    resolve.add_argument("id", type=int)
    resolve.add_argument("--note", required=True, help="how it was resolved")
    resolve.add_argument("--replay", action="store_true", help="and send its payload through again")
    _stack_options(resolve)
    _stack_options(parked)
    parked.set_defaults(run=_parked)


def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "status", help="queue depths, ledger counts, parked events, last reconciler run"
    )
    command.add_argument("--stack", help="a deployed stack's name (default: the local stack)")
    command.add_argument("--database-url", help="default: the stack's, else $DATABASE_URL")
    command.add_argument("--data-dir", type=Path, help="the local stack's (default .hookline)")
    command.add_argument("--json", action="store_true", help="machine-readable output")
    command.set_defaults(run=_status)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="hookline", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    migrate_command = commands.add_parser(
        "migrate", help="apply pending database migrations (safe to run repeatedly)"
    )
    migrate_command.add_argument("--database-url", help="default: $DATABASE_URL")
    migrate_command.add_argument(
        "--schema",
        help="the schema holding hookline's tables (default: $DATABASE_SCHEMA, "
        f"else {DEFAULT_SCHEMA})",
    )
    migrate_command.add_argument(
        "--directory", type=Path, default=None, help=f"default: {default_directory()}"
    )
    migrate_command.add_argument("--dry-run", action="store_true", help="list, apply nothing")
    migrate_command.add_argument("--json", action="store_true", help="machine-readable output")
    migrate_command.add_argument(
        "--stack",
        help="a deployed stack's name: its MigrationsFunction migrates from inside its VPC "
        "(needs lambda:InvokeFunction and cloudformation:DescribeStacks)",
    )
    migrate_command.add_argument("--profile", help="with --stack: the AWS profile")
    migrate_command.add_argument("--region", help="with --stack: the stack's region")
    migrate_command.set_defaults(run=_migrate)
    _add_local(commands)
    _add_send(commands)
    _add_event(commands)
    _add_status(commands)
    _add_operator(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (ConfigurationError, UnknownEventType) as error:
        print(f"hookline {args.command}: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
