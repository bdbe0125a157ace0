"""`hookline parked [list] | show ID | resolve ID --note N [--replay]`: what needs a human."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from hookline.cli.events import cell
from hookline.cli.options import Group, emit, reconciler, remote_options, table

_SHOWN_APART = ("payload", "last_error")


def _when(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text[:19].replace("T", " ") if len(text) >= 19 else text


def render_list(answer: Mapping[str, Any]) -> str:
    rows = list(answer.get("parked") or [])
    if not rows:
        return "no open parked events"
    return table(
        ["ID", "PARKED AT (UTC)", "PROVIDER", "EVENT ID", "TYPE", "REASON"],
        [
            [
                str(r.get("id")),
                _when(r.get("parked_at")),
                str(r.get("provider")),
                str(r.get("event_id")),
                str(r.get("event_type") or "-"),
                str(r.get("reason")),
            ]
            for r in rows
        ],
    )


def render_one(answer: Mapping[str, Any]) -> str:
    row: Mapping[str, Any] = answer.get("parked") or {}
    keys = [k for k in row if k not in _SHOWN_APART]
    width = max((len(k) for k in keys), default=0)
    lines = [f"{key:<{width}}  {cell(row[key])}" for key in keys]
    lines.append(f"{'last_error':<{width}}  {row.get('last_error') or '-'}")
    if "payload" in row:
        lines += ["payload:", json.dumps(row["payload"], indent=2, default=str)]
    return "\n".join(lines)


def render_resolved(given: str) -> Any:
    def render(answer: Mapping[str, Any]) -> str:
        text = f"resolved {answer.get('resolved', given)}"
        replay = answer.get("replay") or {}
        replayed = replay.get("replayed") if isinstance(replay, Mapping) else None
        if replayed:
            text += f"; replayed as {', '.join(map(str, replayed))}"
        return text

    return render


@click.group(
    "parked",
    cls=Group,
    invoke_without_command=True,
    short_help="Events that need a human: list, show, resolve.",
)
@remote_options
@click.pass_context
def parked_group(ctx: click.Context) -> None:
    """Open parked events (newest first) with no subcommand. `show` and `resolve`
    take the number `parked` lists or the event id: digits are read as the number
    when such a parking exists, else as an event id; with --provider, always as
    an event id (Shopify's are digits)."""
    if ctx.invoked_subcommand is None:
        emit(reconciler()({"action": "parked"}), render_list)


@parked_group.command("list")
@remote_options
def list_command() -> None:
    """Open parked events, newest first, with a header row."""
    emit(reconciler()({"action": "parked"}), render_list)


@parked_group.command("show")
@click.argument("id_", metavar="ID")
@click.option("--provider", help="When the event id exists for several providers.")
@remote_options
def show_command(id_: str, provider: str | None) -> None:
    """One parked event in full, its payload included. ID: the number or the event id."""
    request: dict[str, Any] = {"action": "parked", "id": id_}
    if provider is not None:
        request["provider"] = provider
    emit(reconciler()(request), render_one)


@parked_group.command("resolve")
@click.argument("id_", metavar="ID")
@click.option("--note", required=True, help="How it was resolved (kept with the parking).")
@click.option("--replay", is_flag=True, help="And send its payload through again.")
@click.option("--provider", help="When the event id exists for several providers.")
@remote_options
def resolve_command(id_: str, note: str, replay: bool, provider: str | None) -> None:
    """Close a parked event with a note; with --replay, send it through again first
    (the parking closes only once the replay is queued). ID: the number or the event id."""
    if not note.strip():
        raise click.BadParameter("say how it was resolved", param_hint="--note")
    request: dict[str, Any] = {
        "action": "resolve",
        "id": id_,
        "resolution": note,
        "replay": replay,
    }
    if provider is not None:
        request["provider"] = provider
    emit(reconciler()(request), render_resolved(id_))
