"""Shopify: the order system itself. Orders are keyed by Shopify's order id (as text).

Shopify's order is both the order and its one payment (`provider_payment_id` is
the order id), so an order event creates the order row when the shop has not.
Like every writer, it locks the payment row before the order row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookline.errors import MalformedEvent
from hookline.handlers.base import (
    Event,
    HandlerContext,
    Outcome,
    apply_payment_event,
    required_text,
)
from hookline.handlers.registry import registry
from hookline.ledger import LedgerStatus
from hookline.money import currency_code, to_minor
from hookline.payments import (
    PaymentStatus,
    PaymentUpdate,
    RefundStatus,
    RefundUpdate,
    apply_refund,
    cancel_order,
    ensure_order,
    lock_payment,
)

FINANCIAL_STATUS = {
    "pending": PaymentStatus.PENDING,
    "authorized": PaymentStatus.PROCESSING,
    "partially_paid": PaymentStatus.PROCESSING,
    "paid": PaymentStatus.SUCCEEDED,
    "partially_refunded": PaymentStatus.SUCCEEDED,
    "refunded": PaymentStatus.SUCCEEDED,
    "voided": PaymentStatus.CANCELED,
}


def _order(context: HandlerContext, order: Mapping[str, Any]) -> tuple[str, int, str]:
    order_id = required_text(order, "id", "id")
    currency = currency_code(order.get("currency"), "currency")
    amount = to_minor(order.get("total_price"), currency, "total_price")
    lock_payment(context.locks, "shopify", order_id)
    ensure_order(context.locks, order_id, amount, currency)
    return order_id, amount, currency


def _order_payment(context: HandlerContext, event: Event, status: PaymentStatus | None) -> Outcome:
    order_id, amount, currency = _order(context, event.payload)
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="shopify",
            payment_id=order_id,
            occurred_at=event.occurred_at,
            status=status,
            amount=amount,
            currency=currency,
            order_id=order_id,
            # Shopify's order total is what a paid order captured.
            captured_amount=amount if status is PaymentStatus.SUCCEEDED else None,
        ),
    )


@registry.register("shopify", "orders/create")
def order_created(context: HandlerContext, event: Event) -> Outcome:
    financial = event.payload.get("financial_status") or "pending"
    return _order_payment(context, event, FINANCIAL_STATUS.get(str(financial)))


@registry.register("shopify", "orders/paid")
def order_paid(context: HandlerContext, event: Event) -> Outcome:
    return _order_payment(context, event, PaymentStatus.SUCCEEDED)


@registry.register("shopify", "orders/cancelled")
def order_cancelled(context: HandlerContext, event: Event) -> Outcome:
    order_id, _, _ = _order(context, event.payload)
    canceled = cancel_order(context.locks, order_id)
    financial = event.payload.get("financial_status")
    outcome = _order_payment(context, event, FINANCIAL_STATUS.get(str(financial)))
    if canceled and outcome.status is LedgerStatus.STALE:
        # Nothing new about the payment, but the cancellation itself is news.
        return Outcome(LedgerStatus.APPLIED, order_id=order_id, order_status="canceled")
    return outcome


@registry.register("shopify", "refunds/create")
def refund_created(context: HandlerContext, event: Event) -> Outcome:
    refund = event.payload
    order_id = required_text(refund, "order_id", "order_id")
    transactions = refund.get("transactions")
    if not isinstance(transactions, list):
        raise MalformedEvent("transactions is missing or not a list")
    amount, currency = 0, None
    for index, transaction in enumerate(transactions):
        if not isinstance(transaction, Mapping):
            raise MalformedEvent(f"transactions[{index}] is not an object")
        if transaction.get("kind") != "refund" or transaction.get("status") != "success":
            continue
        currency = currency_code(transaction.get("currency"), f"transactions[{index}].currency")
        amount += to_minor(transaction.get("amount"), currency, f"transactions[{index}].amount")
    _, total = apply_refund(
        context.locks,
        RefundUpdate(
            provider="shopify",
            refund_id=required_text(refund, "id", "id"),
            payment_id=order_id,
            status=RefundStatus.SUCCEEDED,
            amount=amount,
            currency=currency,
        ),
    )
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="shopify",
            payment_id=order_id,
            occurred_at=event.occurred_at,
            currency=currency,
            order_id=order_id,
            amount_refunded=total,
        ),
    )
