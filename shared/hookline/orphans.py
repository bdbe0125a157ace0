"""Settling orphans: events about an order the shop had not saved when they arrived.

The payment was applied at the time; only the order was missing. Once the
order exists, recomputing it from its payments gives the same result whatever
order the events came in, so settling needs no replay. Past the deadline an
orphan is parked for a human. The reconciler calls `settle` on its schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hookline.database import Connection
from hookline.ledger import park
from hookline.payments import sync_order

ORPHAN_REASON = "orphan_deadline"


@dataclass(frozen=True)
class SettleResult:
    settled: int = 0
    parked: int = 0
    waiting: int = 0
    mismatched_orders: int = 0


def settle(
    connection: Connection, *, now: datetime, deadline: timedelta, limit: int = 500
) -> SettleResult:
    """Apply orphans whose order now exists (oldest first); park those past `deadline`."""
    orders = connection.execute(
        "SELECT order_id FROM webhook_events WHERE status = 'orphaned'"
        " GROUP BY order_id ORDER BY min(coalesce(occurred_at, received_at)) LIMIT %s",
        (limit,),
    ).fetchall()
    settled = parked = waiting = mismatched = 0
    for row in orders:
        order_id = row["order_id"]
        with connection.transaction():
            change = sync_order(connection, order_id)
            if change is not None:
                result = connection.execute(
                    "UPDATE webhook_events SET status = 'applied', processed_at = now()"
                    " WHERE status = 'orphaned' AND order_id = %s",
                    (order_id,),
                )
                settled += result.rowcount
                mismatched += int(change.became_mismatch)
                continue
            expired = connection.execute(
                "SELECT provider, event_id FROM webhook_events"
                " WHERE status = 'orphaned' AND order_id = %s"
                " AND coalesce(occurred_at, received_at) < %s FOR UPDATE SKIP LOCKED",
                (order_id, now - deadline),
            ).fetchall()
            for event in expired:
                park(
                    connection,
                    event["provider"],
                    event["event_id"],
                    ORPHAN_REASON,
                    f"order {order_id} did not appear within {deadline}",
                )
            parked += len(expired)
            waiting += 1 if not expired else 0
    return SettleResult(settled, parked, waiting, mismatched)
