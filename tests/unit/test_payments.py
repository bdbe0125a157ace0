"""The payment and order rules, exhaustively: no database needed for pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hookline.payments import (
    OrderState,
    OrderStatus,
    PaymentState,
    PaymentStatus,
    PaymentUpdate,
    derive_order,
    is_stale,
    next_payment_state,
)
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def update(
    status: PaymentStatus | None, *, refunded: int | None = None, at: int = 0
) -> PaymentUpdate:
    return PaymentUpdate(
        provider="stripe",
        payment_id="pi_1",
        occurred_at=T0 + timedelta(seconds=at),
        status=status,
        amount=1000,
        currency="USD",
        order_id="o-1",
        amount_refunded=refunded,
    )


def replay(updates: list[PaymentUpdate]) -> PaymentState:
    state: PaymentState | None = None
    for item in updates:
        state = next_payment_state(state, item)
    assert state is not None
    return state


LIFECYCLE = [
    update(PaymentStatus.PENDING, at=0),
    update(PaymentStatus.PROCESSING, at=1),
    update(PaymentStatus.SUCCEEDED, at=2),
    update(None, refunded=400, at=3),
    update(None, refunded=1000, at=4),
]


@given(st.permutations(LIFECYCLE))
def test_any_arrival_order_converges_to_the_same_payment(order: list[PaymentUpdate]) -> None:
    assert replay(order) == replay(LIFECYCLE)
    assert replay(order).status is PaymentStatus.REFUNDED


@given(st.lists(st.sampled_from(LIFECYCLE), min_size=1, max_size=12))
def test_status_never_moves_backwards_and_refunds_never_shrink(
    updates: list[PaymentUpdate],
) -> None:
    from hookline.payments import PAYMENT_RANK

    state: PaymentState | None = None
    for item in updates:
        after = next_payment_state(state, item)
        if state is not None:
            assert PAYMENT_RANK[after.status] >= PAYMENT_RANK[state.status]
            assert after.amount_refunded >= state.amount_refunded
        state = after


def test_late_processing_after_success_is_stale() -> None:
    succeeded = replay(LIFECYCLE[:3])
    late = update(PaymentStatus.PROCESSING, at=1)
    after = next_payment_state(succeeded, late)
    assert after.same_facts(succeeded)
    assert is_stale(succeeded, late, after)


def test_repeating_the_current_status_is_not_stale() -> None:
    succeeded = replay(LIFECYCLE[:3])
    again = update(PaymentStatus.SUCCEEDED, at=5)
    assert not is_stale(succeeded, again, next_payment_state(succeeded, again))


def test_a_failed_attempt_may_still_succeed() -> None:
    failed = replay([update(PaymentStatus.FAILED)])
    assert (
        next_payment_state(failed, update(PaymentStatus.SUCCEEDED)).status
        is PaymentStatus.SUCCEEDED
    )


def test_canceled_and_succeeded_are_both_final() -> None:
    canceled = replay([update(PaymentStatus.CANCELED)])
    late = update(PaymentStatus.SUCCEEDED)
    after = next_payment_state(canceled, late)
    assert after.status is PaymentStatus.CANCELED
    assert is_stale(canceled, late, after)


def order(
    amount: int = 1000, currency: str = "usd", status: OrderStatus = OrderStatus.PENDING
) -> OrderState:
    return OrderState(status, amount, currency, 0, 0)


def paid(amount: int = 1000, currency: str = "USD", refunded: int = 0) -> PaymentState:
    status = PaymentStatus.SUCCEEDED
    if refunded:
        status = PaymentStatus.REFUNDED if refunded >= amount else PaymentStatus.PARTIALLY_REFUNDED
    return PaymentState(status, amount, currency, refunded, "o-1", None)


@pytest.mark.parametrize(
    ("payments", "expected"),
    [
        ([], OrderStatus.PENDING),
        ([paid()], OrderStatus.PAID),
        ([paid(currency="usd")], OrderStatus.PAID),
        ([paid(amount=999)], OrderStatus.AMOUNT_MISMATCH),
        ([paid(currency="EUR")], OrderStatus.AMOUNT_MISMATCH),
        ([paid(refunded=300)], OrderStatus.PARTIALLY_REFUNDED),
        ([paid(refunded=1000)], OrderStatus.REFUNDED),
        ([paid(amount=400), paid(amount=600)], OrderStatus.PAID),
        (
            [PaymentState(PaymentStatus.FAILED, 1000, "USD", 0, "o-1", None)],
            OrderStatus.PAYMENT_FAILED,
        ),
        (
            [PaymentState(PaymentStatus.PROCESSING, 1000, "USD", 0, "o-1", None)],
            OrderStatus.PENDING,
        ),
    ],
    ids=lambda value: str(value)[:40],
)
def test_order_status_follows_its_payments(
    payments: list[PaymentState], expected: OrderStatus
) -> None:
    assert derive_order(order(), payments).status is expected


def test_a_canceled_order_stays_canceled_but_counts_money() -> None:
    derived = derive_order(order(status=OrderStatus.CANCELED), [paid(refunded=1000)])
    assert derived.status is OrderStatus.CANCELED
    assert (derived.paid_amount, derived.refunded_amount) == (1000, 1000)
