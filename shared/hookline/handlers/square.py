"""Square: payments and refunds. The shop's order id is the payment's `reference_id`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookline.errors import MalformedEvent
from hookline.handlers.base import (
    Event,
    HandlerContext,
    Outcome,
    apply_payment_event,
    apply_refund_event,
    integer,
    mapping,
    required_text,
    text,
)
from hookline.handlers.registry import registry
from hookline.money import currency_code
from hookline.payments import (
    PaymentStatus,
    PaymentUpdate,
    RefundStatus,
    RefundUpdate,
)

PAYMENT_STATUS = {
    "PENDING": PaymentStatus.PENDING,
    "APPROVED": PaymentStatus.PROCESSING,
    "COMPLETED": PaymentStatus.SUCCEEDED,
    "FAILED": PaymentStatus.FAILED,
    "CANCELED": PaymentStatus.CANCELED,
}

REFUND_STATUS = {
    "PENDING": RefundStatus.PENDING,
    "COMPLETED": RefundStatus.SUCCEEDED,
    "REJECTED": RefundStatus.FAILED,
    "FAILED": RefundStatus.FAILED,
}


def _money(obj: Mapping[str, Any], key: str, what: str) -> tuple[int, str]:
    money = mapping(obj, key)
    return (
        integer(money, "amount", f"{what}.amount"),
        currency_code(money.get("currency"), f"{what}.currency"),
    )


def _status(table: Mapping[str, Any], value: object, what: str) -> Any:
    if not isinstance(value, str) or value not in table:
        raise MalformedEvent(f"{what} is not a known status")
    return table[value]


@registry.register("square", "payment.created", "payment.updated")
def payment(context: HandlerContext, event: Event) -> Outcome:
    square_payment = mapping(event.payload, "data", "object", "payment")
    amount, currency = _money(square_payment, "amount_money", "payment.amount_money")
    refunded = None
    if isinstance(square_payment.get("refunded_money"), Mapping):
        refunded, _ = _money(square_payment, "refunded_money", "payment.refunded_money")
    status = _status(PAYMENT_STATUS, square_payment.get("status"), "payment.status")
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="square",
            payment_id=required_text(square_payment, "id", "payment.id"),
            occurred_at=event.occurred_at,
            status=status,
            amount=amount,
            currency=currency,
            order_id=text(square_payment, "reference_id", "payment.reference_id", required=False),
            amount_refunded=refunded,
            captured_amount=amount if status is PaymentStatus.SUCCEEDED else None,
        ),
    )


@registry.register("square", "refund.created", "refund.updated")
def refund(context: HandlerContext, event: Event) -> Outcome:
    square_refund = mapping(event.payload, "data", "object", "refund")
    amount, currency = _money(square_refund, "amount_money", "refund.amount_money")
    payment_id = required_text(square_refund, "payment_id", "refund.payment_id")
    return apply_refund_event(
        context,
        RefundUpdate(
            provider="square",
            refund_id=required_text(square_refund, "id", "refund.id"),
            payment_id=payment_id,
            status=_status(REFUND_STATUS, square_refund.get("status"), "refund.status"),
            amount=amount,
            currency=currency,
        ),
        event.occurred_at,
    )
