"""Deleting ledger rows past RETENTION_DAYS, in bounded batches.

Only settled rows go (applied, stale, ignored, and resolved: a parked event a
human closed is as final as an applied one). Failed and orphaned rows are still
being worked on, and parked ones wait for a human. parked_events rows are
never deleted: what was parked, and how it was resolved, stays on record (and
`event` shows an event from its parking once its ledger row is gone).

A batch that fails (a row the shop's own table still references, say) is
retried row by row: the rows that cannot go are logged, counted and left
alone for this run, and the rest are deleted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from hookline.database import Connection, describe
from hookline.deadline import Deadline
from hookline.errors import DatabaseUnavailable
from hookline.metric_names import Metric
from hookline.observability import count, logger

SETTLED = ("applied", "stale", "ignored", "resolved")
# Stop starting batches with less than this left.
MARGIN_SECONDS = 5.0


def delete_expired(
    connection: Connection,
    *,
    now: datetime,
    days: int,
    batch: int = 1000,
    max_batches: int = 50,
    until: Deadline | None = None,
) -> int:
    """Delete settled rows received more than `days` ago; return how many went.

    Each batch is its own short transaction, so a large backlog never holds
    locks for long; what is left goes on the next run.
    """
    until = until or Deadline.never()
    cutoff = now - timedelta(days=days)
    deleted = 0
    # provider:event_id of rows that would not go this run.
    stuck: list[str] = []
    for _ in range(max_batches):
        if until.remaining() < MARGIN_SECONDS:
            break
        try:
            with connection.transaction():
                result = connection.execute(
                    "DELETE FROM webhook_events WHERE ctid IN ("
                    " SELECT ctid FROM webhook_events"
                    " WHERE received_at < %s AND status = ANY(%s)"
                    " AND provider || ':' || event_id <> ALL(%s)"
                    " LIMIT %s FOR UPDATE SKIP LOCKED)",
                    (cutoff, list(SETTLED), stuck, batch),
                )
            count_deleted = result.rowcount
        except psycopg.Error as error:
            if connection.closed or connection.broken:
                raise DatabaseUnavailable(f"PostgreSQL failed: {describe(error)}") from error
            count_deleted = _one_by_one(connection, cutoff, batch, stuck)
        deleted += count_deleted
        if count_deleted < batch and not _more(connection, cutoff, stuck):
            break
    return deleted


def _more(connection: Connection, cutoff: datetime, stuck: list[str]) -> bool:
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE received_at < %s"
        " AND status = ANY(%s) AND provider || ':' || event_id <> ALL(%s)) AS more",
        (cutoff, list(SETTLED), stuck),
    ).fetchone()
    return bool(row and row["more"])


def _one_by_one(connection: Connection, cutoff: datetime, batch: int, stuck: list[str]) -> int:
    rows = connection.execute(
        "SELECT provider, event_id FROM webhook_events"
        " WHERE received_at < %s AND status = ANY(%s) AND provider || ':' || event_id <> ALL(%s)"
        " LIMIT %s",
        (cutoff, list(SETTLED), stuck, batch),
    ).fetchall()
    deleted = 0
    for row in rows:
        try:
            with connection.transaction():
                connection.execute(
                    "DELETE FROM webhook_events WHERE provider = %s AND event_id = %s",
                    (row["provider"], row["event_id"]),
                )
            deleted += 1
        except psycopg.Error as error:
            if connection.closed or connection.broken:
                raise DatabaseUnavailable(f"PostgreSQL failed: {describe(error)}") from error
            stuck.append(f"{row['provider']}:{row['event_id']}")
            count(Metric.RETENTION_FAILED)
            logger.warning(
                "ledger row kept past retention: it could not be deleted",
                extra={
                    "provider": row["provider"],
                    "event_id": row["event_id"],
                    "error": describe(error),
                },
            )
    return deleted
