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

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hookline.database import Connection
from hookline.envelope import MAX_EVENT_ID_CHARS, RECOVERED_HEADER, REPLAY_OF_HEADER, Envelope
from hookline.metric_names import Metric
from hookline.observability import count, logger
from hookline.queue import EventQueue

# The replay a resolution sends is named after the parking, not a random
# nonce: retrying a resolve whose commit failed re-sends the same event, which
# SQS and the ledger then drop.
RESOLVE_NONCE = "parked-{id}"

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


def _replay_envelope(row: Mapping[str, Any], nonce: str, now: datetime) -> Envelope:
    """A new event repeating a ledger or parked_events row: its exact body when kept."""
    if not row.get("event_type"):
        raise OperatorError(
            f"event {row['event_id']} was never an event (not an envelope): nothing to replay"
        )
    body = row["raw_body"] if row.get("raw_body") is not None else json.dumps(row["payload"])
    # An operator's replay is not a recovered event, whatever the original was.
    headers = {k: v for k, v in (row["headers"] or {}).items() if k != RECOVERED_HEADER}
    return Envelope(
        provider=row["provider"],
        event_id=_replay_id(row["event_id"], nonce),
        event_type=row["event_type"],
        object_id=row["object_id"],
        occurred_at=row["occurred_at"],
        received_at=now,
        headers={**headers, REPLAY_OF_HEADER: row["event_id"]},
        body=body,
    )


def _replay_id(event_id: str, nonce: str) -> str:
    """`<event_id>:replay:<nonce>`, or a digest of the id when that would be too long."""
    replay_id = f"{event_id}:replay:{nonce}"
    if len(replay_id) <= MAX_EVENT_ID_CHARS:
        return replay_id
    return f"sha256-{hashlib.sha256(event_id.encode()).hexdigest()}:replay:{nonce}"


def _replayable(connection: Connection, parked_row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The parked row, or for one parked before it kept its envelope, the ledger row."""
    if parked_row.get("event_type") or parked_row["provider"] == "unknown":
        return parked_row
    ledger_row = connection.execute(
        "SELECT * FROM webhook_events WHERE provider = %s AND event_id = %s",
        (parked_row["provider"], parked_row["event_id"]),
    ).fetchone()
    return ledger_row or parked_row


def replay(connection: Connection, queue: EventQueue, request: Mapping[str, Any]) -> dict[str, Any]:
    rows = _replay_rows(connection, request)
    nonce = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    replayed = []
    for row in rows:
        envelope = _replay_envelope(row, nonce, now)
        queue.send(envelope)
        replayed.append(envelope.event_id)
    count(Metric.EVENTS_REPLAYED, len(replayed))
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
    """Close a parked event with a note; with `replay`, send it through again.

    Atomic: the parking is closed only in the transaction that saw the replay
    accepted by SQS. If the replay cannot be built or sent, nothing changes and
    the error says why. The replay is rebuilt from parked_events alone (its
    ledger row may be gone, or never have existed).
    """
    note = str(request.get("resolution") or "").strip()
    if not note:
        raise OperatorError("say how it was resolved (resolution)")
    parked_id = int(request["id"])
    answer: dict[str, Any] = {"ok": True, "resolved": parked_id}
    with connection.transaction():
        row = connection.execute(
            "SELECT * FROM parked_events WHERE id = %s AND resolved_at IS NULL FOR UPDATE",
            (parked_id,),
        ).fetchone()
        if row is None:
            raise OperatorError(f"no open parked event {request['id']}")
        if request.get("replay"):
            envelope = _replay_envelope(
                _replayable(connection, row), RESOLVE_NONCE.format(id=parked_id), datetime.now(UTC)
            )
            queue.send(envelope)  # raises (and rolls back) unless SQS has it
            count(Metric.EVENTS_REPLAYED)
            answer["replay"] = {"ok": True, "replayed": [envelope.event_id]}
        connection.execute(
            "UPDATE parked_events SET resolved_at = now(), resolution = %s WHERE id = %s",
            (note, parked_id),
        )
    count(Metric.PARKED_RESOLVED)
    logger.info("parked event resolved", extra={"parked_id": parked_id, **answer})
    return answer
