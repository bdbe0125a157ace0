"""The shop's order callback: public.orders follows hookline's order, in hookline's transaction.

Ship this module with the functions (a layer, or the hookline layer's shared/
folder) and name it in HOOKLINE_HANDLER_MODULES (`shop_callbacks`) for the
consumer and the reconciler. It runs inside the transaction that applies the
event: the shop's row and hookline's ledger commit together, or neither does.
If it raises, the event rolls back and is retried until it works.

- hookline's session sees only its own schema: name the shop's tables in full
  (`public.orders`).
- Set absolute values from `change.after`, never increments: a retry runs it again.
- Never commit, never open another connection, never call out over the network.
"""

from __future__ import annotations

import uuid

from hookline.database import Connection
from hookline.handlers import OrderChanged, OrderStatus, registry

# hookline's order status → the shop's own payment_status.
PAYMENT_STATUS = {
    OrderStatus.PENDING: "unpaid",
    OrderStatus.PAID: "paid",
    OrderStatus.PARTIALLY_REFUNDED: "partially_refunded",
    OrderStatus.REFUNDED: "refunded",
    OrderStatus.CANCELED: "canceled",
    OrderStatus.PAYMENT_FAILED: "failed",
    OrderStatus.AMOUNT_MISMATCH: "needs_review",
}
MONEY_TAKEN = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED})


@registry.on_order_change
def mirror_payment_status(connection: Connection, change: OrderChanged) -> None:
    try:
        order_id = uuid.UUID(change.order_id)
    except ValueError:
        return  # not an order of this table (another sales channel's): nothing to do
    connection.execute(
        "UPDATE public.orders SET payment_status = %s, paid_cents = %s, refunded_cents = %s,"
        " paid_at = CASE WHEN %s THEN coalesce(paid_at, now()) ELSE paid_at END,"
        " updated_at = now()"
        " WHERE id = %s",
        (
            PAYMENT_STATUS[change.status],
            change.after.paid_amount,
            change.after.refunded_amount,
            change.status in MONEY_TAKEN,
            order_id,
        ),
    )
