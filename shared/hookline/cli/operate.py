"""`hookline redrive` and `hookline replay`: steer the pipeline through the reconciler."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from hookline.cli.options import (
    Command,
    again,
    cell,
    echo_json,
    emit,
    fail,
    failure,
    out,
    reconciler,
    remote_options,
    shared,
    steering,
)
from hookline.cli.times import Moment, check_range
from hookline.errors import EXIT_FAILED


@click.command(
    "redrive",
    cls=Command,
    short_help="Move EventsDLQ back to EventsQueue now (parks past MAX_REDRIVES).",
)
@remote_options
def redrive_command() -> None:
    """Move the messages in EventsDLQ back to EventsQueue now, as the scheduled run
    does; an event that failed permanently MAX_REDRIVES times is parked instead."""

    def render(answer: Mapping[str, Any]) -> str:
        return f"redriven {answer.get('redriven', 0)}, parked {answer.get('parked', 0)}"

    invoke = reconciler()
    steering(again("status"))
    emit(invoke({"action": "redrive"}), render)


def _listed(replayed: list[Any]) -> str:
    return "".join(f"\n  {cell(replay_id)}" for replay_id in replayed)


def _original(replay_id: str) -> str:
    """The event a replay id repeats (`evt_1:replay:abc` -> `evt_1`)."""
    return replay_id.rsplit(":replay:", 1)[0]


@click.command(
    "replay",
    cls=Command,
    short_help="Re-apply events from the ledger's stored payload, through the same path.",
)
@click.argument("event_id", required=False)
@click.option("--provider", help="The provider (needed for a range).")
@click.option("--type", "event_type", metavar="TYPE", help="Only this event type.")
@click.option("--since", type=Moment(), help="Occurred at or after (ISO 8601, or 30m, 2h, 1d).")
@click.option("--until", type=Moment(), help="Occurred before (ISO 8601, or 30m, 2h, 1d).")
@click.option(
    "--after-id",
    metavar="EVENT_ID",
    help="With --since: resume after this event at that moment (what a replay cut short prints).",
)
@remote_options
def replay_command(
    event_id: str | None,
    provider: str | None,
    event_type: str | None,
    since: str | None,
    until: str | None,
    after_id: str | None,
) -> None:
    """Replay one event (EVENT_ID), or a range (--provider with --type, --since,
    --until), oldest first. Each replay is a new event <id>:replay:<nonce> sent
    through the queue and the same apply path; see docs/operations.md.

    Exits 1 when the reconciler's time ran out before the whole range was sent:
    it prints what was sent and how to go on."""
    check_range(since, until)
    if event_id is None and provider is None:
        raise click.UsageError("name an EVENT_ID, or a range with --provider")
    if after_id is not None and since is None:
        raise click.UsageError("--after-id resumes a range at --since: give --since too")
    request = {
        "action": "replay",
        "event_id": event_id,
        "provider": provider,
        "type": event_type,
        "since": since,
        "until": until,
        "after": after_id,
    }
    invoke = reconciler()
    if event_id is not None:
        check = again("events", "show", event_id, *(["--provider", provider] if provider else []))
    else:
        # The replays are new events, received from now on.
        started = datetime.now(UTC).replace(microsecond=0).isoformat()
        check = again("events", "list", "--provider", str(provider), "--since", started)
    steering(check)
    answer = invoke({k: v for k, v in request.items() if v is not None})
    replayed = [str(r) for r in answer.get("replayed") or []]
    if not answer.get("ok"):
        _failed_partway(answer, replayed, request)
    if not answer.get("more"):
        emit(
            answer,
            lambda a: f"replayed {len(replayed)} (nonce {a.get('nonce')}){_listed(replayed)}",
        )
        return
    # The invocation's deadline stopped it: what went out, and how to send the rest.
    if shared().json:
        echo_json(answer)
    else:
        out(f"replayed {len(replayed)} (nonce {answer.get('nonce')}){_listed(replayed)}")
    fail(
        f"the reconciler's time ran out: {len(replayed)} sent, {_rest(answer, replayed, request)}",
        EXIT_FAILED,
    )


def _rest(answer: Mapping[str, Any], replayed: list[str], request: Mapping[str, Any]) -> str:
    """What was not sent, and the command that sends it."""
    remaining = answer.get("remaining")
    counted = isinstance(remaining, int) and not isinstance(remaining, bool)
    rest = f"the other {remaining} were not" if counted else "the rest of the range was not"
    resume = answer.get("resume_since")
    after = answer.get("resume_after")
    if isinstance(resume, str) and resume:
        # Exactly the rest: after the last one sent, at its moment.
        words = ["replay", "--provider", str(request["provider"])]
        words += ["--type", str(request["type"])] if request.get("type") else []
        words += ["--since", resume]
        words += ["--after-id", after] if isinstance(after, str) and after else []
        words += ["--until", str(request["until"])] if request.get("until") else []
        return f"{rest}; send them with `{again(*words)}`"
    original = _original(replayed[-1]) if replayed else None
    # A replay of a very long id is named after its digest, which `events show` cannot find.
    last = (
        f"`{again('events', 'show', original)}`"
        if original and not original.startswith("sha256-")
        else "`events show` of the last one"
    )
    return (
        f"{rest}; to send it, replay again with --since at the last one's time ({last} shows"
        " it; see docs/operations.md)"
    )


def _failed_partway(
    answer: Mapping[str, Any], replayed: list[str], request: Mapping[str, Any]
) -> NoReturn:
    """A failed replay: the error, the replays already sent (they will be applied), and
    for a range, how to send the rest once the cause is fixed."""
    error = failure(answer)
    if replayed:
        if shared().json:
            echo_json(answer)
            where = "in the JSON above"
        else:
            out(f"sent before the failure (nonce {answer.get('nonce')}):{_listed(replayed)}")
            where = "listed above"
        error.message += f" ({len(replayed)} replays were sent before it, {where}"
        if request.get("event_id") is None:
            error.message += f"; {_rest(answer, replayed, request)}"
        error.message += ")"
    raise error
