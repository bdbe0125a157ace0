"""`hookline parked [list] | show ID | resolve ID --note N [--replay]`: what needs a human."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import click

from hookline.cli.options import (
    Group,
    again,
    cell,
    emit,
    limit_option,
    reconciler,
    remote_options,
    shared,
    steering,
    table,
    when,
)
from hookline.inspection import DEFAULT_LIMIT, MAX_LIMIT

_SHOWN_APART = ("payload", "last_error")


def render_list(answer: Mapping[str, Any]) -> str:
    rows = list(answer.get("parked") or [])
    if not rows:
        return "no open parked events"
    text = table(
        ["ID", "PARKED AT (UTC)", "PROVIDER", "EVENT ID", "TYPE", "REASON"],
        [
            [
                str(r.get("id")),
                when(r.get("parked_at")),
                cell(r.get("provider")),
                cell(r.get("event_id")),
                cell(r.get("event_type")),
                cell(r.get("reason")),
            ]
            for r in rows
        ],
    )
    if answer.get("more"):
        text += "\n" + _more(len(rows), answer.get("open"))
    return text


def _more(shown: int, open_count: Any) -> str:
    """The line under a list the limit cut short, saying how to see the rest."""
    if isinstance(open_count, int) and not isinstance(open_count, bool) and open_count > shown:
        hidden = open_count - shown
        wanted = min(open_count, MAX_LIMIT)
        return f"{hidden} more open parkings: --limit {wanted}" + (
            f" (at most {MAX_LIMIT} are listed; `hookline status` counts them all)"
            if open_count > MAX_LIMIT
            else ""
        )
    if shown >= MAX_LIMIT:
        return f"more open parkings than these {shown} (the most listed)"
    return f"more open parkings than these {shown}: --limit {MAX_LIMIT}"


def render_one(answer: Mapping[str, Any]) -> str:
    row: Mapping[str, Any] = answer.get("parked") or {}
    keys = [k for k in row if k not in _SHOWN_APART]
    width = max((len(k) for k in keys), default=0)
    lines = [f"{key:<{width}}  {cell(row[key])}" for key in keys]
    lines.append(f"{'last_error':<{width}}  {cell(row.get('last_error'))}")
    if "payload" in row:
        lines += ["payload:", json.dumps(row["payload"], indent=2, default=str)]
    return "\n".join(lines)


def render_resolved(given: str) -> Callable[[Mapping[str, Any]], str]:
    """`resolved #7 (stripe evt_1)`, and `; replayed as evt_1:replay:parked-7` with --replay."""

    def render(answer: Mapping[str, Any]) -> str:
        number = answer.get("resolved")
        text = f"resolved #{number}" if number is not None else f"resolved {cell(given)}"
        if answer.get("event_id") is not None:
            text += f" ({cell(answer.get('provider'))} {cell(answer['event_id'])})"
        replay = answer.get("replay") or {}
        replayed = replay.get("replayed") if isinstance(replay, Mapping) else None
        if replayed:
            text += f"; replayed as {', '.join(cell(r) for r in replayed)}"
        return text

    return render


def _no_limit() -> None:
    if shared().limit is not None:
        raise click.UsageError("--limit goes with the list (`parked` or `parked list`)")


def _list() -> None:
    limit = shared().limit
    request: dict[str, Any] = {"action": "parked"}
    if limit is not None:
        request["limit"] = limit
    emit(reconciler()(request), render_list)


@click.group(
    "parked",
    cls=Group,
    invoke_without_command=True,
    short_help="Events that need a human: list, show, resolve.",
)
@limit_option(DEFAULT_LIMIT, MAX_LIMIT, "open parkings")
@remote_options
@click.pass_context
def parked_group(ctx: click.Context) -> None:
    """Open parked events (newest first) with no subcommand. `show` and `resolve`
    take the number `parked` lists, written #N or N, or the event id. #N is always
    the number; bare digits are refused when they are both a parking's number and
    an event id; with --provider, ID is always an event id (Shopify's are digits)."""
    if ctx.invoked_subcommand is None:
        _list()


@parked_group.command("list")
@limit_option(DEFAULT_LIMIT, MAX_LIMIT, "open parkings")
@remote_options
def list_command() -> None:
    """Open parked events, newest first, with a header row."""
    _list()


@parked_group.command("show")
@click.argument("id_", metavar="ID")
@click.option("--provider", help="When the event id exists for several providers.")
@remote_options
def show_command(id_: str, provider: str | None) -> None:
    """One parked event in full, its payload included. ID: #N (the number) or the event id."""
    _no_limit()
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
    (the parking closes only once the replay is queued). ID: #N (the number) or the
    event id."""
    _no_limit()
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
    invoke = reconciler()
    check = ["parked", "show", id_] + (["--provider", provider] if provider else [])
    steering(again(*check))
    emit(invoke(request), render_resolved(id_))
