"""Settling orphans: events about an order the shop had not saved when they arrived.

The payment was applied at the time; only the order was missing. Once the
order exists, recomputing it from its payments gives the same result whatever
order the events came in, so settling needs no replay. Past the deadline an
orphan whose order still does not exist is parked for a human. The reconciler
calls `settle` on its schedule.

Every orphan whose order exists is settled, however many others wait for
orders that never come (abandoned checkouts): the orders are found by joining
on them, not by walking the oldest orphans. Each order is its own transaction,
so one that cannot be settled is logged and counted, and the rest go on.

Settling changes orders like applying an event does, so the shop's order
callbacks run and the NOTIFY is sent the same way (hookline.outbox), naming the
latest of the settled events as the cause. A callback that fails leaves the
order's orphans waiting for the next run; it never parks them. One that ended
hookline's transaction (a raw COMMIT or ROLLBACK) also ends this run's settling:
its session is closed (hookline.outbox), and the next run opens another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from hookline.database import Connection, describe
from hookline.deadline import Deadline
from hookline.errors import CallbackFailed, DatabaseUnavailable
from hookline.handlers import HandlerRegistry
from hookline.handlers import registry as default_registry
from hookline.ledger import park
from hookline.locks import RowLocks
from hookline.metric_names import Metric
from hookline.observability import count, logger
from hookline.outbox import Cause, Outbox
from hookline.payments import report_order_changes, sync_order

ORPHAN_REASON = "orphan_deadline"
# Stop starting new work with less than this left; the next run goes on.
MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class SettleResult:
    settled: int = 0
    parked: int = 0
    # Orders that still have orphans waiting for them.
    waiting: int = 0


def settle(
    connection: Connection,
    *,
    now: datetime,
    deadline: timedelta,
    until: Deadline | None = None,
    batch: int = 200,
    registry: HandlerRegistry = default_registry,
) -> SettleResult:
    """Apply orphans whose order now exists; park those past `deadline` whose order does not."""
    until = until or Deadline.never()
    settled = 0
    after = ""
    while until.remaining() > MARGIN_SECONDS:
        orders = [
            row["order_id"]
            for row in connection.execute(
                "SELECT DISTINCT e.order_id FROM webhook_events e"
                " WHERE e.status = 'orphaned' AND e.order_id > %s"
                " AND EXISTS (SELECT 1 FROM orders o WHERE o.id = e.order_id)"
                " ORDER BY e.order_id LIMIT %s",
                (after, batch),
            )
        ]
        for order_id in orders:
            if until.remaining() <= MARGIN_SECONDS:
                break
            after = order_id
            try:
                settled += _settle_order(connection, order_id, registry, until)
            except (DatabaseUnavailable, CallbackFailed, psycopg.Error) as error:
                _broken(connection, error)
                count(Metric.ORPHANS_FAILED)
                logger.error(
                    "orphan could not be settled",
                    extra={"order_id": order_id, "error": describe(error)},
                )
        if len(orders) < batch:
            break
    parked = _park_expired(connection, now - deadline, deadline, until)
    waiting = connection.execute(
        "SELECT count(DISTINCT order_id) AS n FROM webhook_events WHERE status = 'orphaned'"
    ).fetchone()
    assert waiting is not None
    return SettleResult(settled, parked, int(waiting["n"]))


def _broken(connection: Connection, error: Exception) -> None:
    """A broken or closed connection ends the step (every further item would fail the
    same way); a callback that ended hookline's transaction closed it (hookline.outbox)."""
    if connection.closed or connection.broken:
        raise DatabaseUnavailable(f"the connection is gone: {describe(error)}") from error


def _settle_order(
    connection: Connection, order_id: str, registry: HandlerRegistry, until: Deadline
) -> int:
    """Recompute the order and mark its orphans applied; how many were."""
    with connection.transaction():
        locks = RowLocks(connection)
        if sync_order(locks, order_id) is None:  # the shop deleted it meanwhile
            return 0
        settled = connection.execute(
            "UPDATE webhook_events SET status = 'applied', processed_at = now()"
            " WHERE status = 'orphaned' AND order_id = %s"
            " RETURNING provider, event_id, event_type,"
            " coalesce(occurred_at, received_at) AS happened_at",
            (order_id,),
        ).fetchall()
        if not settled:
            # Another run settled them meanwhile, and published what that changed.
            raise psycopg.Rollback()
        latest = max(settled, key=lambda row: (row["happened_at"], row["event_id"]))
        cause = Cause(latest["provider"], latest["event_id"], latest["event_type"])
        Outbox(locks).publish(cause, registry.order_callbacks, until)
    if not settled:
        return 0
    report_order_changes(locks.order_changes)
    return len(settled)


def _park_expired(
    connection: Connection, cutoff: datetime, deadline: timedelta, until: Deadline
) -> int:
    parked = 0
    while until.remaining() > MARGIN_SECONDS:
        expired = connection.execute(
            "SELECT provider, event_id, order_id FROM webhook_events e"
            " WHERE status = 'orphaned' AND coalesce(occurred_at, received_at) < %s"
            " AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = e.order_id)"
            " ORDER BY coalesce(occurred_at, received_at) LIMIT 100",
            (cutoff,),
        ).fetchall()
        progressed = False
        for event in expired:
            try:
                with connection.transaction():
                    exists = connection.execute(
                        "SELECT 1 FROM orders WHERE id = %s", (event["order_id"],)
                    ).fetchone()
                    if exists is None and park(
                        connection,
                        event["provider"],
                        event["event_id"],
                        ORPHAN_REASON,
                        f"order {event['order_id']} did not appear within {deadline}",
                        orphan=True,
                    ):
                        parked += 1
                        progressed = True
                        count(Metric.EVENTS_PARKED, reason=ORPHAN_REASON)
            except psycopg.Error as error:
                _broken(connection, error)
                count(Metric.ORPHANS_FAILED)
                logger.error(
                    "expired orphan could not be parked",
                    extra={"event_id": event["event_id"], "error": describe(error)},
                )
        if len(expired) < 100 or not progressed:
            break
    return parked
