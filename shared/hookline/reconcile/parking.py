"""Parking a dead letter: what needs a human, with its last error, in one transaction."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from hookline import ledger
from hookline.database import Connection
from hookline.reconcile.redrive import DeadLetter, payload_of


def park_dead_letter(connection: Connection, letter: DeadLetter, reason: str) -> None:
    """A parked_events row (and the ledger row marked parked when there is one)."""
    envelope = letter.envelope
    provider = envelope.provider if envelope else "unknown"
    event_id = envelope.event_id if envelope else f"sqs:{letter.message_id}"
    with connection.transaction():
        row = connection.execute(
            "SELECT last_error FROM webhook_events WHERE provider = %s AND event_id = %s",
            (provider, event_id),
        ).fetchone()
        if row is not None:
            ledger.park(connection, provider, event_id, reason, row["last_error"])
            return
        # Never reached the ledger (e.g. not an envelope): keep what SQS held.
        connection.execute(
            "INSERT INTO parked_events (provider, event_id, reason, last_error, payload)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (provider, event_id) WHERE resolved_at IS NULL DO NOTHING",
            (provider, event_id, reason, None, Jsonb(payload_of(letter))),
        )
