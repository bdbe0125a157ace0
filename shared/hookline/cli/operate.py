"""`hookline redrive` and `hookline replay`: steer the pipeline through the reconciler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from hookline.cli.options import Command, emit, reconciler, remote_options
from hookline.cli.times import Moment, check_range


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

    emit(reconciler()({"action": "redrive"}), render)


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
@remote_options
def replay_command(
    event_id: str | None,
    provider: str | None,
    event_type: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """Replay one event (EVENT_ID), or a range (--provider with --type, --since,
    --until). Each replay is a new event <id>:replay:<nonce> sent through the queue
    and the same apply path; see docs/operations.md."""
    check_range(since, until)
    if event_id is None and provider is None:
        raise click.UsageError("name an EVENT_ID, or a range with --provider")
    request = {
        "action": "replay",
        "event_id": event_id,
        "provider": provider,
        "type": event_type,
        "since": since,
        "until": until,
    }

    def render(answer: Mapping[str, Any]) -> str:
        replayed = answer.get("replayed", [])
        return f"replayed {len(replayed)} (nonce {answer.get('nonce')})" + "".join(
            f"\n  {replay_id}" for replay_id in replayed
        )

    emit(reconciler()({k: v for k, v in request.items() if v is not None}), render)
