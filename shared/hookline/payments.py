"""Payments, refunds and orders: the domain rows events move forward, never back.

The state rules are pure functions (`next_payment_state`, `derive_order`) so they
can be tested exhaustively, and they are order-independent: a payment or an
order is a function of the facts its events reported, whatever order they came
in. The SQL around them reads every row that decides a write under that row's
lock, taken through `RowLocks` (payment, then order), so events about one
payment or order that arrive through different FIFO groups (a refund and its
payment, a cancellation and a refund) serialize and never deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg

from hookline.database import StatementQueue
from hookline.locks import RowKind, RowLocks
from hookline.metric_names import Metric
from hookline.observability import count, logger
from hookline.schema import DEFAULT_SCHEMA, schema_name
from hookline.storable import is_storable_text


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


# How far along a payment is, by what its events report. An event never moves a
# payment to a lower rank. `failed` ranks below `succeeded`: a failed attempt may
# be retried and succeed (Stripe keeps the same payment intent). `succeeded`
# outranks `canceled`: a payment never truly has both, and if events disagree,
# captured money is the fact that must not be hidden.
PAYMENT_RANK = {
    PaymentStatus.PENDING: 0,
    PaymentStatus.PROCESSING: 1,
    PaymentStatus.FAILED: 2,
    PaymentStatus.CANCELED: 3,
    PaymentStatus.SUCCEEDED: 4,
    PaymentStatus.PARTIALLY_REFUNDED: 5,
    PaymentStatus.REFUNDED: 6,
}

# Statuses that follow from refunded amounts rather than from a reported status.
REFUND_STATUSES = frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED})

# Money was taken: these count towards an order's paid amount.
CAPTURED = frozenset({PaymentStatus.SUCCEEDED, *REFUND_STATUSES})


@dataclass(frozen=True)
class PaymentUpdate:
    """What one event says about one payment. None means "this event does not say"."""

    provider: str
    payment_id: str
    occurred_at: datetime | None
    status: PaymentStatus | None = None
    # The amount requested (authorized); the same in every event of a payment.
    amount: int | None = None
    currency: str | None = None
    order_id: str | None = None
    # Cumulative, as the provider reports it (never a delta).
    amount_refunded: int | None = None
    # What was actually captured, when the event says (a partial capture is less).
    captured_amount: int | None = None


@dataclass(frozen=True)
class PaymentState:
    status: PaymentStatus
    amount: int
    currency: str | None
    amount_refunded: int
    order_id: str | None
    last_event_at: datetime | None
    captured_amount: int | None = None

    @property
    def money(self) -> int:
        """The money this payment moved: what was captured, else what was asked."""
        return self.captured_amount if self.captured_amount is not None else self.amount

    @property
    def money_known(self) -> bool:
        """Whether `money` is a reported fact (a refund seen first may leave it unknown)."""
        return self.captured_amount is not None or self.amount > 0

    def same_facts(self, other: PaymentState) -> bool:
        return replace(self, last_event_at=None) == replace(other, last_event_at=None)


_NEW_PAYMENT = PaymentState(PaymentStatus.PENDING, 0, None, 0, None, None)


def _reported_rank(state: PaymentState) -> int:
    # With money refunded, a refund status is derived from the refunds, which prove
    # the money was captured: against a reported status it stands for `succeeded`,
    # so a `succeeded` event arriving after the refund still brings its facts.
    if state.status in REFUND_STATUSES and state.amount_refunded > 0:
        return PAYMENT_RANK[PaymentStatus.SUCCEEDED]
    return PAYMENT_RANK[state.status]


def _larger(first: int | None, second: int | None) -> int | None:
    if first is None or second is None:
        return second if first is None else first
    return max(first, second)


def next_payment_state(current: PaymentState | None, update: PaymentUpdate) -> PaymentState:
    """The payment after `update`: status only moves up, refunds and captures only grow."""
    base = current or _NEW_PAYMENT
    base_rank = _reported_rank(base) if current is not None else -1
    # Equal rank is the same status reported again: its facts are as good.
    advances = update.status is not None and PAYMENT_RANK[update.status] >= base_rank
    status = update.status if advances and update.status is not None else base.status
    amount = base.amount
    if update.amount is not None and (advances or base.amount == 0):
        amount = update.amount
    currency = base.currency
    if update.currency is not None and (advances or base.currency is None):
        currency = update.currency
    captured = _larger(base.captured_amount, update.captured_amount)
    refunded = max(base.amount_refunded, update.amount_refunded or 0)
    if refunded > 0:
        # A refund proves the money was captured, whatever order events came in.
        money = captured if captured is not None else amount
        full = money > 0 and refunded >= money
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
        captured_amount=captured,
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
    paid = sum(p.money for p in captured)
    refunded = sum(p.amount_refunded for p in payments)
    known = bool(captured) and all(p.money_known for p in captured)
    currency = order.currency.upper()
    if order.status is OrderStatus.CANCELED:
        status = OrderStatus.CANCELED
    elif paid > 0 and refunded >= paid:
        status = OrderStatus.REFUNDED
    elif known and (
        paid != order.amount or any((p.currency or "").upper() != currency for p in captured)
    ):
        status = OrderStatus.AMOUNT_MISMATCH
    elif refunded > 0:
        status = OrderStatus.PARTIALLY_REFUNDED
    elif known:
        # Includes a free order: captured 0 of an amount of 0.
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


_PAYMENT_COLUMNS = (
    "status, amount, currency, amount_refunded, order_id, last_event_at, captured_amount"
)


@dataclass
class BatchedLocks(RowLocks):
    """RowLocks whose statements wait in `queue` until an answer is needed.

    The functions below queue their writes instead of sending each one, and send
    the queue (one round trip) only when they must read; the applier sends what
    is left with the ledger row and COMMIT. Only hookline's own handlers get one:
    they reach the connection through these functions alone, so nothing else can
    run a statement between a queued write and the reads after it. A team's
    handler gets plain `RowLocks`, and each function sends its own statements
    before it returns.
    """

    queue: StatementQueue = field(init=False)

    def __post_init__(self) -> None:
        self.queue = StatementQueue(self.connection)


def _queue(locks: RowLocks) -> StatementQueue:
    return locks.queue if isinstance(locks, BatchedLocks) else StatementQueue(locks.connection)


def _sent(locks: RowLocks, queue: StatementQueue) -> None:
    """With plain RowLocks, what a function queued is sent before it returns."""
    if not isinstance(locks, BatchedLocks):
        queue.flush()


def _payment_state(row: Mapping[str, Any]) -> PaymentState:
    return PaymentState(
        status=PaymentStatus(str(row["status"])),
        amount=int(row["amount"]),
        currency=row["currency"],
        amount_refunded=int(row["amount_refunded"]),
        order_id=row["order_id"],
        last_event_at=row["last_event_at"],
        captured_amount=row["captured_amount"],
    )


# Creates the payment's row as a `pending` placeholder if there is none (RETURNING 1
# only then); an existing row is left alone, so no INSERT or UPDATE row trigger a
# shop may have on `payments` fires for it. If another transaction is inserting the
# row, this waits for it, and inserts nothing once it commits.
_CREATE_PAYMENT = (
    "INSERT INTO payments (provider, provider_payment_id, status)"
    " SELECT %(provider)s, %(payment_id)s, 'pending' WHERE NOT EXISTS (SELECT FROM payments"
    " WHERE provider = %(provider)s AND provider_payment_id = %(payment_id)s)"
    " ON CONFLICT (provider, provider_payment_id) DO NOTHING RETURNING 1"
)
# The lock, in the statement after (its own snapshot): the row is there now, whoever
# created it, and is read as the last transaction that held the lock left it.
_LOCK_PAYMENT = (
    f"SELECT {_PAYMENT_COLUMNS} FROM payments"  # noqa: S608 - constant column list
    " WHERE provider = %(provider)s AND provider_payment_id = %(payment_id)s FOR UPDATE"
)
# The payment's order: the one it names, else the one the event names (as
# `next_payment_state` keeps it).
_PAYMENT_ORDER = (
    "(SELECT coalesce(nullif(order_id, ''), %(order_id)s) FROM payments"
    " WHERE provider = %(provider)s AND provider_payment_id = %(payment_id)s)"
)
_ORDER_COLUMNS = "id, status, amount, currency, paid_amount, refunded_amount"
_LOCK_ORDER = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = %(order_id)s FOR UPDATE"  # noqa: S608
_LOCK_PAYMENT_ORDER = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = {_PAYMENT_ORDER} FOR UPDATE"  # noqa: S608
# An order's payments, read in a statement after the order's lock (its own snapshot):
# a payment another transaction changed while this one waited for the lock is seen.
_ORDER_PAYMENTS = (
    f"SELECT provider, provider_payment_id, {_PAYMENT_COLUMNS} FROM payments"  # noqa: S608
    " WHERE order_id = %(order_id)s"
)
_PAYMENT_ORDER_PAYMENTS = (
    f"SELECT provider, provider_payment_id, {_PAYMENT_COLUMNS} FROM payments"  # noqa: S608
    f" WHERE order_id = {_PAYMENT_ORDER}"
)
_UPDATE_PAYMENT = (
    "UPDATE payments SET status = %s, amount = %s, currency = %s, amount_refunded = %s,"
    " order_id = %s, last_event_at = %s, captured_amount = %s, updated_at = now()"
    " WHERE provider = %s AND provider_payment_id = %s"
)


def _hold_payment(locks: RowLocks, queue: StatementQueue, provider: str, payment_id: str) -> Any:
    """Queue the payment's placeholder (if absent) and its lock, which reads it;
    returns the lock's Pending."""
    locks.claim(RowKind.PAYMENT, provider, payment_id)
    key = (provider, payment_id)

    def created(rows: list[Any]) -> None:
        if rows:
            locks.created_payments.add(key)

    params = {"provider": provider, "payment_id": payment_id}
    queue.add(_CREATE_PAYMENT, params, then=created)
    return queue.add(_LOCK_PAYMENT, params)


def hold_payment(locks: RowLocks, provider: str, payment_id: str) -> None:
    """Lock the payment's row (creating it if absent) without waiting for its state.

    With hookline's batched locks the lock travels with the next statements that
    need an answer; otherwise it is taken before this returns.
    """
    queue = _queue(locks)
    _hold_payment(locks, queue, provider, payment_id)
    _sent(locks, queue)


def _current(locks: RowLocks, key: tuple[str, str], row: Mapping[str, Any] | None) -> Any:
    assert row is not None, "a locked payment row is always there"
    return None if key in locks.created_payments else _payment_state(row)


def lock_payment(locks: RowLocks, provider: str, payment_id: str) -> PaymentState | None:
    """Lock the payment's row, creating it if absent; None if this transaction created it.

    A row that does not exist cannot be locked, so it is created (a `pending`
    placeholder) first: whatever this transaction then reads about the payment
    (its refunds, say) is read under the lock every other writer waits for.
    """
    queue = _queue(locks)
    read = _hold_payment(locks, queue, provider, payment_id)
    state: PaymentState | None = _current(locks, (provider, payment_id), read.one())
    _sent(locks, queue)
    return state


def _write_payment(
    locks: RowLocks,
    queue: StatementQueue,
    update: PaymentUpdate,
    current: PaymentState | None,
) -> PaymentChange:
    after = next_payment_state(current, update)
    stale = is_stale(current, update, after)
    if current is None or after != current:
        queue.add(
            _UPDATE_PAYMENT,
            (
                after.status.value,
                after.amount,
                after.currency,
                after.amount_refunded,
                after.order_id,
                after.last_event_at,
                after.captured_amount,
                update.provider,
                update.payment_id,
            ),
        )
    locks.created_payments.discard((update.provider, update.payment_id))
    return PaymentChange(after, stale)


def apply_payment(locks: RowLocks, update: PaymentUpdate) -> PaymentChange:
    """Move one payment forward by `update` (inside the caller's transaction)."""
    queue = _queue(locks)
    read = _hold_payment(locks, queue, update.provider, update.payment_id)
    current = _current(locks, (update.provider, update.payment_id), read.one())
    change = _write_payment(locks, queue, update, current)
    _sent(locks, queue)
    return change


def apply_payment_and_sync(
    locks: RowLocks, update: PaymentUpdate
) -> tuple[PaymentChange, OrderChange | None]:
    """`apply_payment`, then (unless the event is stale) `sync_order` of the payment's
    order, with one round trip for both.

    The order the payment will name is known before its row is read (the one it
    names, else the event's), so its lock and the read of its payments are queued
    right behind the payment's lock: they run in that order, each under the locks
    before it, and this payment's own row among them is replaced by its new state
    (its write travels later, but no one else can change it while it is locked).
    A stale event locked the order for nothing; it writes nothing to it, but the
    lock is held, so it counts for the lock order.

    With a team's plain RowLocks it is the two calls, one after the other: a stale
    event there locks no order, so a handler that goes on to lock another payment
    is as free to as it always was.
    """
    if not isinstance(locks, BatchedLocks):
        change = apply_payment(locks, update)
        if change.stale or change.after.order_id is None:
            return change, None
        return change, sync_order(locks, change.after.order_id)
    queue = locks.queue
    key = (update.provider, update.payment_id)
    read = _hold_payment(locks, queue, *key)
    params = {"provider": update.provider, "payment_id": update.payment_id}
    order = queue.add(_LOCK_PAYMENT_ORDER, {**params, "order_id": update.order_id})
    siblings = queue.add(_PAYMENT_ORDER_PAYMENTS, {**params, "order_id": update.order_id})
    change = _write_payment(locks, queue, update, _current(locks, key, read.one()))
    order_id = change.after.order_id
    synced: OrderChange | None = None
    if order_id is not None:
        locks.claim(RowKind.ORDER, order_id)
    if not change.stale and order_id is not None:
        row = order.one()
        if row is not None:
            assert row["id"] == order_id, "the order locked is the one the payment names"
            payments = [
                _payment_state(r)
                for r in siblings.rows()
                if (r["provider"], r["provider_payment_id"]) != key
            ]
            synced = _derive(locks, queue, order_id, _order_state(row), [*payments, change.after])
    return change, synced


@dataclass(frozen=True)
class RefundUpdate:
    provider: str
    refund_id: str
    payment_id: str
    status: RefundStatus
    amount: int
    currency: str | None


def apply_refund(locks: RowLocks, update: RefundUpdate) -> tuple[bool, int]:
    """Record one refund; return (stale, total succeeded refunds of its payment).

    The payment is locked first: two refunds of one payment (in different FIFO
    groups) then sum one after the other, and neither misses the other.
    """
    queue = _queue(locks)
    _hold_payment(locks, queue, update.provider, update.payment_id)
    written = queue.add(
        "INSERT INTO refunds AS r (provider, provider_refund_id, provider_payment_id, status,"
        " amount, currency) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (provider, provider_refund_id) DO UPDATE"
        " SET status = EXCLUDED.status, amount = EXCLUDED.amount,"
        " currency = coalesce(EXCLUDED.currency, r.currency), updated_at = now()"
        # Settled once; after that only more of it can succeed (a refund paid back
        # over several transactions), so an older view never shrinks it.
        " WHERE (r.status = 'pending' AND EXCLUDED.status <> 'pending')"
        " OR (r.status = 'succeeded' AND EXCLUDED.status = 'succeeded'"
        " AND EXCLUDED.amount > r.amount)"
        " RETURNING 1",
        (
            update.provider,
            update.refund_id,
            update.payment_id,
            update.status.value,
            update.amount,
            update.currency,
        ),
    )
    total = queue.add(
        "SELECT coalesce(sum(amount), 0) AS total FROM refunds"
        " WHERE provider = %s AND provider_payment_id = %s AND status = 'succeeded'",
        (update.provider, update.payment_id),
    ).one()
    assert total is not None
    stale = written.one() is None
    _sent(locks, queue)
    return stale, int(total["total"])


def pending_refunds(locks: RowLocks, provider: str, payment_id: str) -> list[RefundUpdate]:
    """The payment's refunds still `pending`, read under the payment's lock (taken here).

    For a provider whose later event settles them (Adyen: a CANCEL_OR_REFUND that
    found no capture is recorded pending; the capture, delivered after it, proves it
    was a refund).
    """
    queue = _queue(locks)
    _hold_payment(locks, queue, provider, payment_id)
    rows = queue.add(
        "SELECT provider_refund_id, amount, currency FROM refunds"
        " WHERE provider = %s AND provider_payment_id = %s AND status = 'pending'"
        " ORDER BY provider_refund_id",
        (provider, payment_id),
    ).rows()
    _sent(locks, queue)
    return [
        RefundUpdate(
            provider=provider,
            refund_id=str(row["provider_refund_id"]),
            payment_id=payment_id,
            status=RefundStatus.PENDING,
            amount=int(row["amount"]),
            currency=row["currency"],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class OrderChange:
    order_id: str
    before: OrderState
    after: OrderState

    @property
    def became_mismatch(self) -> bool:
        return (
            self.after.status is OrderStatus.AMOUNT_MISMATCH
            and self.before.status is not OrderStatus.AMOUNT_MISMATCH
        )


def ensure_order(
    locks: RowLocks, order_id: str, amount: int, currency: str, *, managed_by: str | None = None
) -> None:
    """Create the order if the shop has not (for providers that are the order system).

    `managed_by` names the provider creating it, recorded only when this call
    creates the row: such an order may follow that provider's later totals
    (`follow_managed_order`); one the shop created itself never does.
    """
    locks.claim(RowKind.ORDER, order_id)
    queue = _queue(locks)
    queue.add(
        "INSERT INTO orders (id, amount, currency, managed_by) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING",
        (order_id, amount, currency, managed_by),
    )
    _sent(locks, queue)


def follow_managed_order(
    locks: RowLocks, order_id: str, provider: str, amount: int, currency: str
) -> None:
    """Set the amount and currency of an order `provider` created (ensure_order) to its
    current ones: the provider is the order system, so an order edited before payment
    is worth what it says now. The caller passes only facts newer than any it applied.

    An order the shop created (or another provider did) is left alone: a payment that
    differs from it stays an amount mismatch. Call it before the order is derived
    from its payments, which then counts against the new amount.
    """
    locks.claim(RowKind.ORDER, order_id)
    queue = _queue(locks)
    queue.add(
        "UPDATE orders SET amount = %s, currency = %s, updated_at = now()"
        " WHERE id = %s AND managed_by = %s AND (amount <> %s OR upper(currency) <> upper(%s))",
        (amount, currency, order_id, provider, amount, currency),
    )
    _sent(locks, queue)


def _order_state(row: Mapping[str, Any]) -> OrderState:
    return OrderState(
        status=OrderStatus(row["status"]),
        amount=int(row["amount"]),
        currency=str(row["currency"]),
        paid_amount=int(row["paid_amount"]),
        refunded_amount=int(row["refunded_amount"]),
    )


def cancel_order(locks: RowLocks, order_id: str) -> bool:
    """Mark the order canceled; return whether that changed it."""
    locks.claim(RowKind.ORDER, order_id)
    queue = _queue(locks)
    row = queue.add(_LOCK_ORDER, {"order_id": order_id}).one()
    if row is None or OrderStatus(row["status"]) is OrderStatus.CANCELED:
        _sent(locks, queue)
        return False
    before = _order_state(row)
    queue.add(
        "UPDATE orders SET status = 'canceled', updated_at = now() WHERE id = %s", (order_id,)
    )
    _sent(locks, queue)
    # A change like any other: the shop's callbacks and listeners hear of it (hookline.outbox).
    locks.order_changes.append(
        OrderChange(order_id, before, replace(before, status=OrderStatus.CANCELED))
    )
    return True


def reopen_order(locks: RowLocks, order_id: str) -> OrderChange | None:
    """Reopen a canceled order whose provider now reports it paid (a newer fact than the
    cancellation: the caller decides that): its status is derived from its payments
    again, as if it had never been canceled. None if it is not canceled (or absent).

    For providers that are the order system (WooCommerce reopens an order its
    hold-stock timer canceled once the gateway's late payment arrives): captured
    money must never hide behind `canceled`.
    """
    locks.claim(RowKind.ORDER, order_id)
    queue = _queue(locks)
    order = queue.add(_LOCK_ORDER, {"order_id": order_id})
    payments = queue.add(_ORDER_PAYMENTS, {"order_id": order_id})
    row = order.one()
    if row is None or OrderStatus(row["status"]) is not OrderStatus.CANCELED:
        _sent(locks, queue)
        return None
    before = _order_state(row)
    states = [_payment_state(r) for r in payments.rows()]
    after = derive_order(replace(before, status=OrderStatus.PENDING), states)
    queue.add(
        "UPDATE orders SET status = %s, paid_amount = %s, refunded_amount = %s,"
        " updated_at = now() WHERE id = %s",
        (after.status.value, after.paid_amount, after.refunded_amount, order_id),
    )
    change = OrderChange(order_id, before, after)
    locks.order_changes.append(change)
    _sent(locks, queue)
    return change


def _derive(
    locks: RowLocks,
    queue: StatementQueue,
    order_id: str,
    before: OrderState,
    payments: list[PaymentState],
) -> OrderChange:
    """The order recomputed from its payments (read under its lock), its write queued."""
    after = derive_order(before, payments)
    if after != before:
        queue.add(
            "UPDATE orders SET status = %s, paid_amount = %s, refunded_amount = %s,"
            " updated_at = now() WHERE id = %s",
            (after.status.value, after.paid_amount, after.refunded_amount, order_id),
        )
    change = OrderChange(order_id, before, after)
    locks.order_changes.append(change)
    return change


def sync_order(locks: RowLocks, order_id: str) -> OrderChange | None:
    """Recompute an order from its payments; None if the shop has no such order yet.

    The payments are read under the order's lock, in the statement after it (its
    own snapshot): a payment changed by another transaction meanwhile is followed
    by that transaction's own sync, which waits for this lock and then reads this
    one's committed change.
    """
    locks.claim(RowKind.ORDER, order_id)
    queue = _queue(locks)
    order = queue.add(_LOCK_ORDER, {"order_id": order_id})
    payments = queue.add(_ORDER_PAYMENTS, {"order_id": order_id})
    row = order.one()
    change = None
    if row is not None:
        states = [_payment_state(r) for r in payments.rows()]
        change = _derive(locks, queue, order_id, _order_state(row), states)
    _sent(locks, queue)
    return change


def net_order_changes(changes: list[OrderChange]) -> list[OrderChange]:
    """Per order, what one transaction changed: its first state to its last (it may
    recompute one order several times on the way). Before commit, `hookline.outbox`
    publishes these to the shop (callbacks, NOTIFY); after it, `report_order_changes`
    counts them."""
    net: dict[str, OrderChange] = {}
    for change in changes:
        first = net.get(change.order_id, change)
        net[change.order_id] = OrderChange(change.order_id, first.before, change.after)
    return list(net.values())


def report_order_changes(changes: list[OrderChange]) -> None:
    """After commit: count and log the transitions alarms watch, whichever path made them."""
    for change in net_order_changes(changes):
        if change.became_mismatch:
            count(Metric.AMOUNT_MISMATCHES)
            logger.warning(
                "order amount mismatch",
                extra={
                    "order_id": change.order_id,
                    "order_amount": change.after.amount,
                    "paid_amount": change.after.paid_amount,
                },
            )


def expect_payment(
    connection: psycopg.Connection[Any],
    provider: str,
    payment_id: str,
    order_id: str,
    *,
    schema: str = DEFAULT_SCHEMA,
) -> bool:
    """Bind a payment to the shop's order before the provider reports on it.

    For providers whose confirmed state names no order (Khalti's lookup has no
    order id), the shop calls this when it initiates the payment, in its own
    transaction if it likes: the payment row is created `pending` with its order.
    The first binding wins (ON CONFLICT DO NOTHING, and `next_payment_state` keeps
    the order a payment already names); returns whether this call made it.

    A shop that is not in Python runs the same statement:
    `INSERT INTO hookline.payments (provider, provider_payment_id, order_id, status)
    VALUES ('khalti', $1, $2, 'pending') ON CONFLICT DO NOTHING`.
    """
    for value, what in ((provider, "provider"), (payment_id, "payment id"), (order_id, "order id")):
        if not value or not is_storable_text(value):
            raise ValueError(f"the {what} must be non-empty text without NUL")
    # schema_name() allows lowercase letters, digits and _ only: nothing to quote.
    row = connection.execute(
        f"INSERT INTO {schema_name(schema)}.payments"  # noqa: S608
        " (provider, provider_payment_id, order_id, status) VALUES (%s, %s, %s, 'pending')"
        " ON CONFLICT (provider, provider_payment_id) DO NOTHING RETURNING 1",
        (provider, payment_id, order_id),
    ).fetchone()
    return row is not None
