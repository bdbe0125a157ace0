"""`webhook_events`: the ledger that makes applying an event exactly-once.

The ledger row and the domain change commit in one transaction, so the unique
key (provider, event_id) is what dedups, not a SELECT before an INSERT, and a
redelivered event finds its row and does nothing, however long after.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, LiteralString

from psycopg.types.json import Jsonb

from hookline.database import Connection, StatementQueue
from hookline.envelope import Envelope
from hookline.inspection import LedgerStatus as LedgerStatus
from hookline.payloads import Stored
from hookline.storable import storable_text

MAX_ERROR_CHARS = 1000


# A row in one of these states was handled; a redelivery is a no-op. `failed`
# rows are retried; `orphaned` ones are settled by `hookline.orphans`. A
# resolved event comes back only as an operator's replay, under a new event id.
FINAL = frozenset(
    {
        LedgerStatus.APPLIED,
        LedgerStatus.STALE,
        LedgerStatus.IGNORED,
        LedgerStatus.ORPHANED,
        LedgerStatus.PARKED,
        LedgerStatus.RESOLVED,
    }
)


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming an event: run it, or it was already handled."""

    run: bool
    existing: LedgerStatus | None = None


def _identity(envelope: Envelope) -> tuple[Any, ...]:
    """The envelope fields every ledger INSERT starts with, in column order."""
    return (
        envelope.provider,
        envelope.event_id,
        envelope.event_type,
        envelope.object_id,
        envelope.occurred_at,
        envelope.received_at,
    )


# Parked for its own failures, by the consumer or the reconciler.
PERMANENT_FAILURE_REASON = "permanent_failure"


class FailureKind(StrEnum):
    # A dependency failed (database, provider API, time): says nothing about the event.
    TRANSIENT = "transient"
    # The event itself failed (malformed, unknown to the provider, a handler bug).
    PERMANENT = "permanent"


_CLAIM = (
    "INSERT INTO webhook_events (provider, event_id, event_type, object_id, occurred_at,"
    " received_at, status, headers, payload, raw_body)"
    " VALUES (%s, %s, %s, %s, %s, %s, 'received', %s, %s, %s)"
    " ON CONFLICT (provider, event_id) DO NOTHING RETURNING 1"
)
# The row a redelivery finds, locked. Run after the INSERT, with its own snapshot,
# so a row another transaction committed meanwhile is seen. Never the row this
# transaction just inserted ('received', and no lock needed on it): a committed
# 'received' row (a handler that ran COMMIT) is found by `_EXISTING`.
_EXISTING_HANDLED = (
    "SELECT status FROM webhook_events"
    " WHERE provider = %s AND event_id = %s AND status <> 'received' FOR UPDATE"
)
_EXISTING = "SELECT status FROM webhook_events WHERE provider = %s AND event_id = %s FOR UPDATE"


class PendingClaim:
    """A claim sent with whatever else its queue holds (BEGIN, the session's facts)."""

    def __init__(self, queue: StatementQueue, envelope: Envelope, stored: Stored) -> None:
        self._queue = queue
        self._envelope = envelope
        key = (envelope.provider, envelope.event_id)
        self._inserted = queue.add(
            _CLAIM, (*_identity(envelope), Jsonb(envelope.headers), stored.payload, stored.raw_body)
        )
        self._handled = queue.add(_EXISTING_HANDLED, key)

    def result(self) -> Claim:
        if self._inserted.one() is not None:
            return Claim(run=True)
        row = self._handled.one()
        if row is None:
            # A committed 'received' row, or none (deleted by retention since the INSERT).
            key = (self._envelope.provider, self._envelope.event_id)
            row = self._queue.add(_EXISTING, key).one()
        if row is None:  # deleted by retention between the statements: nothing to redo
            return Claim(run=False)
        existing = LedgerStatus(row["status"])
        return Claim(run=existing not in FINAL, existing=existing)


def send_claim(queue: StatementQueue, envelope: Envelope, stored: Stored) -> PendingClaim:
    """Queue the claim: insert the event's row, or lock the existing one."""
    return PendingClaim(queue, envelope, stored)


def claim(connection: Connection, envelope: Envelope, stored: Stored) -> Claim:
    """Insert the event's row, or lock the existing one (inside the apply transaction)."""
    queue = StatementQueue(connection)
    return send_claim(queue, envelope, stored).result()


def finish(
    connection: Connection | StatementQueue,
    envelope: Envelope,
    status: LedgerStatus,
    *,
    order_id: str | None = None,
) -> None:
    """Record how the event ended; on a queue, it travels with the commit."""
    query: LiteralString = (
        "UPDATE webhook_events SET status = %s, order_id = %s, processed_at = now(),"
        " attempts = attempts + 1, last_error = NULL WHERE provider = %s AND event_id = %s"
    )
    params = (status.value, order_id, envelope.provider, envelope.event_id)
    if isinstance(connection, StatementQueue):
        connection.add(query, params)
    else:
        connection.execute(query, params)


def record_failure(
    connection: Connection,
    envelope: Envelope,
    stored: Stored,
    error: str,
    kind: FailureKind,
) -> int | None:
    """Note a failed attempt, its error and whose fault it was; the row stays retryable.

    Returns how many of the event's own (permanent) failures the row now counts,
    or None if the row was already handled (nothing to note).
    """
    permanent = int(kind is FailureKind.PERMANENT)
    row = connection.execute(
        "INSERT INTO webhook_events AS e (provider, event_id, event_type, object_id, occurred_at,"
        " received_at, status, attempts, last_error, failure_kind, permanent_failures,"
        " headers, payload, raw_body)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'failed', 1, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (provider, event_id) DO UPDATE"
        " SET attempts = e.attempts + 1, last_error = EXCLUDED.last_error,"
        " failure_kind = EXCLUDED.failure_kind,"
        " permanent_failures = e.permanent_failures + EXCLUDED.permanent_failures"
        " WHERE e.status IN ('failed', 'received')"
        " RETURNING permanent_failures",
        (
            *_identity(envelope),
            storable_text(error[:MAX_ERROR_CHARS]),
            kind.value,
            permanent,
            Jsonb(envelope.headers),
            stored.payload,
            stored.raw_body,
        ),
    ).fetchone()
    return None if row is None else int(row["permanent_failures"])


@dataclass(frozen=True)
class LedgerRow:
    """What the reconciler needs to know of an event's ledger row."""

    status: LedgerStatus
    permanent_failures: int
    last_error: str | None


def lookup(connection: Connection, provider: str, event_id: str) -> LedgerRow | None:
    row = connection.execute(
        "SELECT status, permanent_failures, last_error FROM webhook_events"
        " WHERE provider = %s AND event_id = %s",
        (provider, event_id),
    ).fetchone()
    if row is None:
        return None
    return LedgerRow(
        LedgerStatus(row["status"]),
        int(row["permanent_failures"]),
        row["last_error"],
    )


def park(
    connection: Connection,
    provider: str,
    event_id: str,
    reason: str,
    last_error: str | None = None,
    *,
    orphan: bool = False,
) -> bool:
    """Hand an event to a human: the ledger row marked parked and a `parked_events` row
    carrying the whole envelope (so it can be replayed from there alone).

    Only an event still being worked on (received, failed) is parked, or, with
    `orphan`, an orphan past its deadline: a handled event is never turned into
    a parked one. Returns whether it parked.
    """
    parkable = ["received", "failed", *(["orphaned"] if orphan else [])]
    parked = connection.execute(
        "UPDATE webhook_events SET status = 'parked', processed_at = now()"
        " WHERE provider = %s AND event_id = %s AND status = ANY(%s) RETURNING 1",
        (provider, event_id, parkable),
    ).fetchone()
    if parked is None:
        return False
    connection.execute(
        "INSERT INTO parked_events (provider, event_id, reason, last_error, payload, event_type,"
        " object_id, occurred_at, received_at, headers, raw_body)"
        " SELECT provider, event_id, %s, %s, payload, event_type, object_id, occurred_at,"
        " received_at, headers, raw_body FROM webhook_events"
        " WHERE provider = %s AND event_id = %s"
        " ON CONFLICT (provider, event_id) WHERE resolved_at IS NULL DO NOTHING",
        (reason, last_error and storable_text(last_error), provider, event_id),
    )
    return True
