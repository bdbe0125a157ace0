"""Operator actions: replay from the ledger, and parked events (list, show, resolve).

A replay re-sends a ledger row's stored payload through the queue and the same
apply path, as a new event `<event_id>:replay:<nonce>` (headers name the
original). The nonce keeps SQS deduplication, the idempotency store and the
ledger from swallowing an intended replay. The payment rules are idempotent
and never move a payment backwards, so replaying an event whose effect is
already there changes nothing (recorded `applied`, or `stale` if newer events
came since); it restores an effect that was lost (a database restore, a
handler fixed after the fact).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hookline.database import Connection
from hookline.envelope import REPLAY_OF_HEADER, Envelope
from hookline.observability import count, logger
from hookline.queue import EventQueue

MAX_REPLAY = 1000
PARKED_PAGE = 50


class OperatorError(ValueError):
    """An operator request that cannot be carried out as asked (named, not guessed)."""


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _replay_rows(connection: Connection, request: Mapping[str, Any]) -> list[dict[str, Any]]:
    if request.get("event_id"):
        rows = connection.execute(
            "SELECT * FROM webhook_events WHERE event_id = %s"
            " AND (%s::text IS NULL OR provider = %s)",
            (request["event_id"], request.get("provider"), request.get("provider")),
        ).fetchall()
        if len(rows) > 1:
            raise OperatorError("that event id exists for several providers: name --provider")
        if not rows:
            raise OperatorError(f"no ledger row for event {request['event_id']}")
        return rows
    if not request.get("provider"):
        raise OperatorError("a range replay needs provider (and type, since, until as wanted)")
    rows = connection.execute(
        "SELECT * FROM webhook_events WHERE provider = %s"
        " AND (%s::text IS NULL OR event_type = %s)"
        " AND (%s::timestamptz IS NULL OR coalesce(occurred_at, received_at) >= %s)"
        " AND (%s::timestamptz IS NULL OR coalesce(occurred_at, received_at) < %s)"
        " AND event_id NOT LIKE '%%:replay:%%'"
        " ORDER BY coalesce(occurred_at, received_at) LIMIT %s",
        (
            request["provider"],
            request.get("type"),
            request.get("type"),
            request.get("since"),
            request.get("since"),
            request.get("until"),
            request.get("until"),
            MAX_REPLAY + 1,
        ),
    ).fetchall()
    if len(rows) > MAX_REPLAY:
        raise OperatorError(f"more than {MAX_REPLAY} events match: narrow the range")
    return rows


def replay(connection: Connection, queue: EventQueue, request: Mapping[str, Any]) -> dict[str, Any]:
    rows = _replay_rows(connection, request)
    nonce = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    replayed = []
    for row in rows:
        envelope = Envelope(
            provider=row["provider"],
            event_id=f"{row['event_id']}:replay:{nonce}",
            event_type=row["event_type"],
            object_id=row["object_id"],
            occurred_at=row["occurred_at"],
            received_at=now,
            headers={**(row["headers"] or {}), REPLAY_OF_HEADER: row["event_id"]},
            body=json.dumps(row["payload"]),
        )
        queue.send(envelope)
        replayed.append(envelope.event_id)
    count("EventsReplayed", len(replayed))
    logger.info("events replayed", extra={"nonce": nonce, "replayed": len(replayed)})
    return {"ok": True, "nonce": nonce, "replayed": replayed}


def parked(connection: Connection, request: Mapping[str, Any]) -> dict[str, Any]:
    """Open parked events (newest first), or one of them in full with `id`."""
    if request.get("id") is not None:
        row = connection.execute(
            "SELECT * FROM parked_events WHERE id = %s", (int(request["id"]),)
        ).fetchone()
        if row is None:
            raise OperatorError(f"no parked event {request['id']}")
        return {"ok": True, "parked": _jsonable(row)}
    rows = connection.execute(
        "SELECT id, provider, event_id, reason, last_error, parked_at FROM parked_events"
        " WHERE resolved_at IS NULL ORDER BY parked_at DESC LIMIT %s",
        (PARKED_PAGE,),
    ).fetchall()
    return {"ok": True, "parked": [_jsonable(row) for row in rows]}


def resolve(
    connection: Connection, queue: EventQueue, request: Mapping[str, Any]
) -> dict[str, Any]:
    """Close a parked event with a note; with `replay`, send its payload through again."""
    note = str(request.get("resolution") or "").strip()
    if not note:
        raise OperatorError("say how it was resolved (resolution)")
    with connection.transaction():
        row = connection.execute(
            "UPDATE parked_events SET resolved_at = now(), resolution = %s"
            " WHERE id = %s AND resolved_at IS NULL RETURNING provider, event_id",
            (note, int(request["id"])),
        ).fetchone()
        if row is None:
            raise OperatorError(f"no open parked event {request['id']}")
    answer: dict[str, Any] = {"ok": True, "resolved": int(request["id"])}
    if request.get("replay"):
        answer["replay"] = replay(
            connection, queue, {"event_id": row["event_id"], "provider": row["provider"]}
        )
    count("ParkedResolved")
    return answer
