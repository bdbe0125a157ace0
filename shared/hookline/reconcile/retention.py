"""Deleting ledger rows past RETENTION_DAYS, in bounded batches.

Only settled rows go (applied, stale, ignored). Failed and orphaned rows are
still being worked on, and parked ones wait for a human.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hookline.database import Connection

SETTLED = ("applied", "stale", "ignored")


def delete_expired(
    connection: Connection,
    *,
    now: datetime,
    days: int,
    batch: int = 1000,
    max_batches: int = 50,
) -> int:
    """Delete settled rows received more than `days` ago; return how many went.

    Each batch is its own short transaction, so a large backlog never holds
    locks for long; what is left goes on the next run.
    """
    cutoff = now - timedelta(days=days)
    deleted = 0
    for _ in range(max_batches):
        with connection.transaction():
            result = connection.execute(
                "DELETE FROM webhook_events WHERE ctid IN ("
                " SELECT ctid FROM webhook_events"
                " WHERE received_at < %s AND status = ANY(%s) LIMIT %s FOR UPDATE SKIP LOCKED)",
                (cutoff, list(SETTLED), batch),
            )
        deleted += result.rowcount
        if result.rowcount < batch:
            break
    return deleted
