"""Payments, refunds and orders: the domain rows events move forward, never back.

The state rules are pure functions (`next_payment_state`, `derive_order`) so they
can be tested exhaustively; the SQL around them locks the rows it changes, so
events about one payment that arrive through different FIFO groups (a Stripe
charge and its payment intent) still serialize.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from hookline.database import Connection


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELED = "canceled"
    PAYMENT_FAILED = "payment_failed"
    AMOUNT_MISMATCH = "amount_mismatch"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# How far along a payment is. An event never moves a payment to a lower rank.
# `failed` ranks below `succeeded`: a failed attempt may be retried and succeed
# (Stripe keeps the same payment intent); `canceled` and `succeeded` are final.
PAYMENT_RANK = {
    PaymentStatus.PENDING: 0,
    PaymentStatus.PROCESSING: 1,
    PaymentStatus.FAILED: 2,
    PaymentStatus.CANCELED: 3,
    PaymentStatus.SUCCEEDED: 3,
    PaymentStatus.PARTIALLY_REFUNDED: 4,
    PaymentStatus.REFUNDED: 5,
}

# Money was taken: these count towards an order's paid amount.
CAPTURED = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
)

REFUND_RANK = {
    RefundStatus.PENDING: 0,
    RefundStatus.SUCCEEDED: 1,
    RefundStatus.FAILED: 1,
    RefundStatus.CANCELED: 1,
}


@dataclass(frozen=True)
class PaymentUpdate:
    """What one event says about one payment. None means "this event does not say"."""

    provider: str
    payment_id: str
    occurred_at: datetime | None
    status: PaymentStatus | None = None
    amount: int | None = None
    currency: str | None = None
    order_id: str | None = None
    # Cumulative, as the provider reports it (never a delta).
    amount_refunded: int | None = None


@dataclass(frozen=True)
class PaymentState:
    status: PaymentStatus
    amount: int
    currency: str | None
    amount_refunded: int
    order_id: str | None
    last_event_at: datetime | None

    def same_facts(self, other: PaymentState) -> bool:
        return replace(self, last_event_at=None) == replace(other, last_event_at=None)


_NEW_PAYMENT = PaymentState(PaymentStatus.PENDING, 0, None, 0, None, None)


def next_payment_state(current: PaymentState | None, update: PaymentUpdate) -> PaymentState:
    """The payment after `update`: status only moves up, refunds only grow."""
    base = current or _NEW_PAYMENT
    base_rank = PAYMENT_RANK[base.status] if current is not None else -1
    # Equal rank moves nothing: `canceled` and `succeeded` are both final.
    advances = update.status is not None and (
        PAYMENT_RANK[update.status] > base_rank or update.status is base.status
    )
    status = update.status if advances and update.status is not None else base.status
    amount = base.amount
    if update.amount is not None and (advances or base.amount == 0):
        amount = update.amount
    currency = base.currency
    if update.currency is not None and (advances or base.currency is None):
        currency = update.currency
    refunded = max(base.amount_refunded, update.amount_refunded or 0)
    if refunded > 0:
        # A refund proves the money was captured, whatever order events came in.
        full = amount > 0 and refunded >= amount
        status = PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED
    last_event_at = base.last_event_at
    if update.occurred_at is not None and (
        last_event_at is None or update.occurred_at > last_event_at
    ):
        last_event_at = update.occurred_at
    return PaymentState(
        status=status,
        amount=amount,
        currency=currency,
        amount_refunded=refunded,
        order_id=base.order_id or update.order_id,
        last_event_at=last_event_at,
    )


def is_stale(current: PaymentState | None, update: PaymentUpdate, after: PaymentState) -> bool:
    """The event taught nothing new and describes an earlier state than the current one."""
    if current is None or not after.same_facts(current):
        return False
    return update.status != current.status


@dataclass(frozen=True)
class OrderState:
    status: OrderStatus
    amount: int
    currency: str
    paid_amount: int
    refunded_amount: int


def derive_order(order: OrderState, payments: list[PaymentState]) -> OrderState:
    """An order's status and totals from its payments (so arrival order cannot matter)."""
    captured = [p for p in payments if p.status in CAPTURED]
    paid = sum(p.amount for p in captured)
    refunded = sum(p.amount_refunded for p in payments)
    currency = order.currency.upper()
    if order.status is OrderStatus.CANCELED:
        status = OrderStatus.CANCELED
    elif paid > 0 and refunded >= paid:
        status = OrderStatus.REFUNDED
    elif paid > 0 and (
        paid != order.amount or any((p.currency or "").upper() != currency for p in captured)
    ):
        status = OrderStatus.AMOUNT_MISMATCH
    elif refunded > 0:
        status = OrderStatus.PARTIALLY_REFUNDED
    elif paid > 0:
        status = OrderStatus.PAID
    elif (
        payments
        and all(p.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED) for p in payments)
        and any(p.status is PaymentStatus.FAILED for p in payments)
    ):
        status = OrderStatus.PAYMENT_FAILED
    else:
        status = OrderStatus.PENDING
    return replace(order, status=status, paid_amount=paid, refunded_amount=refunded)


@dataclass(frozen=True)
class PaymentChange:
    after: PaymentState
    stale: bool


_PAYMENT_COLUMNS = "status, amount, currency, amount_refunded, order_id, last_event_at"


def _payment_state(row: dict[str, Any]) -> PaymentState:
    return PaymentState(
        status=PaymentStatus(str(row["status"])),
        amount=int(row["amount"]),
        currency=row["currency"],
        amount_refunded=int(row["amount_refunded"]),
        order_id=row["order_id"],
        last_event_at=row["last_event_at"],
    )


def _lock_payment(connection: Connection, provider: str, payment_id: str) -> PaymentState | None:
    row = connection.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM payments"  # noqa: S608 - constant column list
        " WHERE provider = %s AND provider_payment_id = %s FOR UPDATE",
        (provider, payment_id),
    ).fetchone()
    return None if row is None else _payment_state(row)


def apply_payment(connection: Connection, update: PaymentUpdate) -> PaymentChange:
    """Move one payment forward by `update` (inside the caller's transaction)."""
    current = _lock_payment(connection, update.provider, update.payment_id)
    if current is None:
        after = next_payment_state(None, update)
        inserted = connection.execute(
            "INSERT INTO payments (provider, provider_payment_id, order_id, status, amount,"
            " currency, amount_refunded, last_event_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (provider, provider_payment_id) DO NOTHING RETURNING 1",
            (
                update.provider,
                update.payment_id,
                after.order_id,
                after.status.value,
                after.amount,
                after.currency,
                after.amount_refunded,
                after.last_event_at,
            ),
        ).fetchone()
        if inserted is not None:
            return PaymentChange(after, stale=False)
        # Another transaction created it first; now it is there to lock.
        current = _lock_payment(connection, update.provider, update.payment_id)
        assert current is not None
    after = next_payment_state(current, update)
    stale = is_stale(current, update, after)
    if after != current:
        connection.execute(
            "UPDATE payments SET status = %s, amount = %s, currency = %s, amount_refunded = %s,"
            " order_id = %s, last_event_at = %s, updated_at = now()"
            " WHERE provider = %s AND provider_payment_id = %s",
            (
                after.status.value,
                after.amount,
                after.currency,
                after.amount_refunded,
                after.order_id,
                after.last_event_at,
                update.provider,
                update.payment_id,
            ),
        )
    return PaymentChange(after, stale)


@dataclass(frozen=True)
class RefundUpdate:
    provider: str
    refund_id: str
    payment_id: str
    status: RefundStatus
    amount: int
    currency: str | None


def apply_refund(connection: Connection, update: RefundUpdate) -> tuple[bool, int]:
    """Record one refund; return (stale, total succeeded refunds of its payment)."""
    row = connection.execute(
        "INSERT INTO refunds AS r (provider, provider_refund_id, provider_payment_id, status,"
        " amount, currency) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (provider, provider_refund_id) DO UPDATE"
        " SET status = EXCLUDED.status, amount = EXCLUDED.amount, updated_at = now()"
        " WHERE r.status = 'pending' AND EXCLUDED.status <> 'pending'"
        " RETURNING 1",
        (
            update.provider,
            update.refund_id,
            update.payment_id,
            update.status.value,
            update.amount,
            update.currency,
        ),
    ).fetchone()
    total = connection.execute(
        "SELECT coalesce(sum(amount), 0) AS total FROM refunds"
        " WHERE provider = %s AND provider_payment_id = %s AND status = 'succeeded'",
        (update.provider, update.payment_id),
    ).fetchone()
    assert total is not None
    return row is None, int(total["total"])


@dataclass(frozen=True)
class OrderChange:
    before: OrderState
    after: OrderState

    @property
    def became_mismatch(self) -> bool:
        return (
            self.after.status is OrderStatus.AMOUNT_MISMATCH
            and self.before.status is not OrderStatus.AMOUNT_MISMATCH
        )


def ensure_order(connection: Connection, order_id: str, amount: int, currency: str) -> None:
    """Create the order if the shop has not (for providers that are the order system)."""
    connection.execute(
        "INSERT INTO orders (id, amount, currency) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (order_id, amount, currency),
    )


def cancel_order(connection: Connection, order_id: str) -> None:
    connection.execute(
        "UPDATE orders SET status = 'canceled', updated_at = now()"
        " WHERE id = %s AND status <> 'canceled'",
        (order_id,),
    )


def sync_order(connection: Connection, order_id: str) -> OrderChange | None:
    """Recompute an order from its payments; None if the shop has no such order yet."""
    row = connection.execute(
        "SELECT status, amount, currency, paid_amount, refunded_amount FROM orders"
        " WHERE id = %s FOR UPDATE",
        (order_id,),
    ).fetchone()
    if row is None:
        return None
    before = OrderState(
        status=OrderStatus(row["status"]),
        amount=int(row["amount"]),
        currency=str(row["currency"]),
        paid_amount=int(row["paid_amount"]),
        refunded_amount=int(row["refunded_amount"]),
    )
    payment_rows = connection.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE order_id = %s",  # noqa: S608
        (order_id,),
    ).fetchall()
    after = derive_order(before, [_payment_state(r) for r in payment_rows])
    if after != before:
        connection.execute(
            "UPDATE orders SET status = %s, paid_amount = %s, refunded_amount = %s,"
            " updated_at = now() WHERE id = %s",
            (after.status.value, after.paid_amount, after.refunded_amount, order_id),
        )
    return OrderChange(before, after)
