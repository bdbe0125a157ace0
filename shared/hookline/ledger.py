"""`webhook_events`: the ledger that makes applying an event exactly-once.

The ledger row and the domain change commit in one transaction, so the unique
key (provider, event_id) is what dedups, not a SELECT before an INSERT, and a
redelivered event finds its row and does nothing, however long after.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from psycopg.types.json import Jsonb

from hookline.database import Connection
from hookline.envelope import Envelope

MAX_ERROR_CHARS = 1000


class LedgerStatus(StrEnum):
    RECEIVED = "received"
    APPLIED = "applied"
    STALE = "stale"
    IGNORED = "ignored"
    ORPHANED = "orphaned"
    PARKED = "parked"
    FAILED = "failed"


# A row in one of these states was handled; a redelivery is a no-op. `failed`
# rows are retried; `orphaned` ones are settled by `hookline.orphans`.
FINAL = frozenset(
    {
        LedgerStatus.APPLIED,
        LedgerStatus.STALE,
        LedgerStatus.IGNORED,
        LedgerStatus.ORPHANED,
        LedgerStatus.PARKED,
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


def claim(connection: Connection, envelope: Envelope, payload: Any) -> Claim:
    """Insert the event's row, or lock the existing one (inside the apply transaction)."""
    inserted = connection.execute(
        "INSERT INTO webhook_events (provider, event_id, event_type, object_id, occurred_at,"
        " received_at, status, headers, payload)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'received', %s, %s)"
        " ON CONFLICT (provider, event_id) DO NOTHING RETURNING 1",
        (*_identity(envelope), Jsonb(envelope.headers), Jsonb(payload)),
    ).fetchone()
    if inserted is not None:
        return Claim(run=True)
    row = connection.execute(
        "SELECT status FROM webhook_events WHERE provider = %s AND event_id = %s FOR UPDATE",
        (envelope.provider, envelope.event_id),
    ).fetchone()
    if row is None:  # deleted by retention between the two statements: nothing to redo
        return Claim(run=False)
    existing = LedgerStatus(row["status"])
    return Claim(run=existing not in FINAL, existing=existing)


def finish(
    connection: Connection,
    envelope: Envelope,
    status: LedgerStatus,
    *,
    order_id: str | None = None,
) -> None:
    connection.execute(
        "UPDATE webhook_events SET status = %s, order_id = %s, processed_at = now(),"
        " attempts = attempts + 1, last_error = NULL WHERE provider = %s AND event_id = %s",
        (status.value, order_id, envelope.provider, envelope.event_id),
    )


def record_failure(connection: Connection, envelope: Envelope, payload: Any, error: str) -> None:
    """Note a failed attempt and its error; the row stays retryable."""
    connection.execute(
        "INSERT INTO webhook_events AS e (provider, event_id, event_type, object_id, occurred_at,"
        " received_at, status, attempts, last_error, headers, payload)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'failed', 1, %s, %s, %s)"
        " ON CONFLICT (provider, event_id) DO UPDATE"
        " SET attempts = e.attempts + 1, last_error = EXCLUDED.last_error"
        " WHERE e.status IN ('failed', 'received')",
        (
            *_identity(envelope),
            error[:MAX_ERROR_CHARS],
            Jsonb(envelope.headers),
            Jsonb(payload),
        ),
    )


def park(
    connection: Connection,
    provider: str,
    event_id: str,
    reason: str,
    last_error: str | None = None,
) -> None:
    """Hand an event to a human: a `parked_events` row and the ledger row marked parked."""
    connection.execute(
        "INSERT INTO parked_events (provider, event_id, reason, last_error, payload)"
        " SELECT provider, event_id, %s, %s, payload FROM webhook_events"
        " WHERE provider = %s AND event_id = %s"
        " ON CONFLICT (provider, event_id) WHERE resolved_at IS NULL DO NOTHING",
        (reason, last_error, provider, event_id),
    )
    connection.execute(
        "UPDATE webhook_events SET status = 'parked', processed_at = now()"
        " WHERE provider = %s AND event_id = %s",
        (provider, event_id),
    )
