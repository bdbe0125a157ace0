"""`hookline events list | show`: the ledger, read through the stack's reconciler."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from hookline.cli.options import Group, cell, emit, reconciler, remote_options, table, when
from hookline.cli.times import Moment, check_range
from hookline.inspection import DEFAULT_LIMIT, EVENT_FIELDS, MAX_LIMIT, LedgerStatus

STATUSES = tuple(LedgerStatus)


def render_list(answer: Mapping[str, Any]) -> str:
    events = list(answer.get("events") or [])
    if not events:
        return "no events match"
    rows = [
        [
            when(e.get("received_at")),
            cell(e.get("provider")),
            cell(e.get("event_id")),
            cell(e.get("event_type")),
            cell(e.get("status")),
            cell(e.get("attempts")),
            cell(e.get("order_id")),
        ]
        for e in events
    ]
    text = table(
        ["RECEIVED (UTC)", "PROVIDER", "EVENT ID", "TYPE", "STATUS", "ATTEMPTS", "ORDER"], rows
    )
    if answer.get("more"):
        text += (
            f"\n(the newest {len(events)}; more match: narrow with --since/--until or raise "
            f"--limit)"
        )
    return text


def _section(title: str, fields: Mapping[str, Any], keys: list[str] | None = None) -> list[str]:
    lines = [title]
    chosen = keys if keys is not None else list(fields)
    width = max((len(k) for k in chosen), default=0)
    lines += [f"  {key:<{width}}  {cell(fields.get(key))}" for key in chosen]
    return lines


_SHOWN_APART = {"payment", "order", "parked", "replays", "payload", "last_error", "attempts"}
LEDGER_KEYS = [name for name in EVENT_FIELDS if name not in _SHOWN_APART]


def render_event(answer: Mapping[str, Any]) -> str:
    event: Mapping[str, Any] = answer.get("event") or {}
    ledger = [k for k in LEDGER_KEYS if k in event] + sorted(
        k for k in event if k not in LEDGER_KEYS and k not in _SHOWN_APART
    )
    lines = _section("ledger", event, ledger)
    lines += ["", f"attempts: {cell(event.get('attempts'))}"]
    lines.append(f"last error: {cell(event.get('last_error'))}")
    for name in ("payment", "order"):
        lines.append("")
        found = event.get(name)
        if found:
            lines += _section(name, found)
        else:
            lines.append(f"{name}: none")
    lines.append("")
    parkings = list(event.get("parked") or [])
    if not parkings:
        lines.append("parked: never")
    for parking in parkings:
        state = "open" if not parking.get("resolved_at") else "resolved"
        lines += _section(f"parked #{parking.get('id')} ({state})", parking)
    replays = list(event.get("replays") or [])
    lines += ["", "replays: " + (", ".join(cell(r) for r in replays) if replays else "none")]
    if "payload" in event:
        lines += ["", "payload:", json.dumps(event["payload"], indent=2, default=str)]
    return "\n".join(lines)


@click.group("events", cls=Group, short_help="The ledger: list events, show one.")
@remote_options
def events_group() -> None:
    """Look into the ledger (webhook_events) of the local stack or of a deployed one."""


@events_group.command("list")
@click.option("--provider", help="Only this provider's events.")
@click.option("--type", "event_type", metavar="TYPE", help="Only this event type.")
@click.option("--status", type=click.Choice(STATUSES), help="Only events with this status.")
@click.option("--order", metavar="ORDER_ID", help="Only events about this order of the shop's.")
@click.option("--since", type=Moment(), help="Received at or after (ISO 8601, or 30m, 2h, 1d).")
@click.option("--until", type=Moment(), help="Received before (ISO 8601, or 30m, 2h, 1d).")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=DEFAULT_LIMIT,
    show_default=True,
    help=f"At most this many, newest first (at most {MAX_LIMIT}).",
)
@remote_options
def list_command(
    provider: str | None,
    event_type: str | None,
    status: str | None,
    order: str | None,
    since: str | None,
    until: str | None,
    limit: int,
) -> None:
    """Events in the ledger, newest first, with a header row."""
    check_range(since, until)
    request = {
        "action": "events",
        "provider": provider,
        "type": event_type,
        "status": status,
        "order": order,
        "since": since,
        "until": until,
        "limit": limit,
    }
    answer = reconciler()({k: v for k, v in request.items() if v is not None})
    emit(answer, render_list)


@events_group.command("show")
@click.argument("event_id")
@click.option("--provider", help="When the id exists for several providers.")
@click.option("--payload", is_flag=True, help="Include the stored payload (customer data).")
@remote_options
def show_command(event_id: str, provider: str | None, payload: bool) -> None:
    """One event: its ledger row, attempts, last error, the payment and order it
    touched, its parked state and the replays made of it."""
    request: dict[str, Any] = {"action": "event", "event_id": event_id}
    if provider is not None:
        request["provider"] = provider
    if payload:
        request["payload"] = True
    emit(reconciler()(request), render_event)
