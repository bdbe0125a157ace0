"""The payment and order rules, exhaustively: no database needed for pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hookline.payments import (
    OrderChange,
    OrderState,
    OrderStatus,
    PaymentState,
    PaymentStatus,
    PaymentUpdate,
    derive_order,
    is_stale,
    net_order_changes,
    next_payment_state,
)
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def update(
    status: PaymentStatus | None,
    *,
    refunded: int | None = None,
    at: int = 0,
    captured: int | None = None,
) -> PaymentUpdate:
    """What one event says about a payment of 1000 requested (authorized)."""
    return PaymentUpdate(
        provider="stripe",
        payment_id="pi_1",
        occurred_at=T0 + timedelta(seconds=at),
        status=status,
        amount=1000,
        currency="USD",
        order_id="o-1",
        amount_refunded=refunded,
        captured_amount=captured,
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


def test_succeeded_outranks_canceled_whichever_came_first() -> None:
    # Both cannot really happen to one payment; if events disagree, the result must
    # not depend on their arrival order, and captured money must not be hidden.
    canceled, succeeded = update(PaymentStatus.CANCELED, at=1), update(PaymentStatus.SUCCEEDED)
    assert replay([canceled, succeeded]) == replay([succeeded, canceled])
    assert replay([canceled, succeeded]).status is PaymentStatus.SUCCEEDED
    late = next_payment_state(replay([succeeded]), canceled)
    assert is_stale(replay([succeeded]), canceled, late)


PARTIAL_CAPTURE_REFUNDED = [
    update(PaymentStatus.PENDING, at=0),
    update(PaymentStatus.PROCESSING, at=1),
    update(PaymentStatus.SUCCEEDED, at=2, captured=800),
    update(None, at=3, captured=800, refunded=800),
]


@given(st.permutations(PARTIAL_CAPTURE_REFUNDED))
def test_partial_capture_then_full_refund_counts_what_was_captured_in_any_order(
    arrival: list[PaymentUpdate],
) -> None:
    """Issue 10, defect 7: authorized 1000, captured 800, refunded 800."""
    payment = replay(arrival)
    assert payment == replay(PARTIAL_CAPTURE_REFUNDED)
    assert (payment.status, payment.amount, payment.captured_amount) == (
        PaymentStatus.REFUNDED,
        1000,
        800,
    )
    derived = derive_order(order(amount=800), [payment])
    assert (derived.status, derived.paid_amount, derived.refunded_amount) == (
        OrderStatus.REFUNDED,
        800,
        800,
    )


# Events of one payment as providers report them: the same requested amount and
# currency in each; captures and refunds cumulative.
LIFECYCLE_EVENTS = st.lists(
    st.builds(
        update,
        st.sampled_from([None, *PaymentStatus]),
        at=st.integers(0, 100),
        captured=st.one_of(st.none(), st.integers(0, 1000)),
        refunded=st.one_of(st.none(), st.integers(0, 1000)),
    ),
    min_size=1,
    max_size=8,
)


@given(LIFECYCLE_EVENTS, st.randoms(use_true_random=False))
def test_a_payment_is_a_function_of_its_facts_not_of_their_arrival_order(
    updates: list[PaymentUpdate], rng: Any
) -> None:
    shuffled = list(updates)
    rng.shuffle(shuffled)
    assert replay(shuffled) == replay(updates)
    assert derive_order(order(), [replay(shuffled)]) == derive_order(order(), [replay(updates)])


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


def test_a_free_order_reported_paid_is_paid() -> None:
    """Issue 10, defect 8: a 0.00 order whose payment succeeded with 0 captured."""
    free = PaymentState(PaymentStatus.SUCCEEDED, 0, "USD", 0, "o-1", None, captured_amount=0)
    assert derive_order(order(amount=0), [free]).status is OrderStatus.PAID
    nothing_yet = PaymentState(PaymentStatus.PENDING, 0, "USD", 0, "o-1", None)
    assert derive_order(order(amount=0), [nothing_yet]).status is OrderStatus.PENDING


def test_a_refund_seen_before_its_payment_is_no_mismatch() -> None:
    # Square reports a refund without the payment's amount: the money is not known yet.
    refund_first = PaymentState(PaymentStatus.PARTIALLY_REFUNDED, 0, "USD", 500, "o-1", None)
    assert derive_order(order(), [refund_first]).status is OrderStatus.PARTIALLY_REFUNDED


def test_a_canceled_order_stays_canceled_but_counts_money() -> None:
    derived = derive_order(order(status=OrderStatus.CANCELED), [paid(refunded=1000)])
    assert derived.status is OrderStatus.CANCELED
    assert (derived.paid_amount, derived.refunded_amount) == (1000, 1000)


def test_a_transaction_reports_each_order_by_its_committed_change() -> None:
    """An order recomputed twice in one transaction (pending → mismatch → paid, as a
    split payment's parts arrive) committed no mismatch: none may be counted."""
    pending, paid_state = order(), order(status=OrderStatus.PAID)
    mismatch = order(status=OrderStatus.AMOUNT_MISMATCH)
    changes = [
        OrderChange("o-1", pending, mismatch),
        OrderChange("o-2", pending, mismatch),
        OrderChange("o-1", mismatch, paid_state),
    ]
    net = {change.order_id: change for change in net_order_changes(changes)}
    assert (net["o-1"].before, net["o-1"].after) == (pending, paid_state)
    assert not net["o-1"].became_mismatch
    assert net["o-2"].became_mismatch
