"""Razorpay: payments, refunds and paid orders. Payments are keyed by Razorpay's payment id.

The shop's order id: a payment event's `payment.notes.order_id` (the shop passes
`notes: {order_id: ...}` in Checkout options or when creating the Razorpay
order), else none; `order.paid`'s `order.receipt` (the shop's own id on the
Razorpay order), else the payment's notes. A payment keeps the first order id
it learns, so a shop using both sets them to the same value.

Razorpay signs the whole body, so every fact here is signed: the status is the
entity's own `status` (never the event name alone), amounts are integers in
minor units (paise). Money back is the sum of the payment's processed refunds,
each recorded by its refund event (refund.created/processed/failed) under its
own id. A payment's `amount_refunded`, carried by payment and refund events, is
never read: it already counts refunds still pending, which may yet fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
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
from hookline.providers.base import dig

PAYMENT_STATUS = {
    "created": PaymentStatus.PENDING,
    "authorized": PaymentStatus.PROCESSING,
    "captured": PaymentStatus.SUCCEEDED,
    # Refunded money was captured first; the refunded amount says how much went back.
    "refunded": PaymentStatus.SUCCEEDED,
    "failed": PaymentStatus.FAILED,
}

REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "processed": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
}

PAYMENT_EVENTS = ("payment.authorized", "payment.captured", "payment.failed")
REFUND_EVENTS = ("refund.created", "refund.processed", "refund.failed")


def _entity(event: Event, name: str) -> Mapping[str, Any]:
    return mapping(event.payload, "payload", name, "entity")


def _status(table: Mapping[str, Any], value: object, what: str) -> Any:
    if not isinstance(value, str) or value not in table:
        raise MalformedEvent(f"{what} is not a known status")
    return table[value]


def _notes_order_id(payment: Mapping[str, Any]) -> str | None:
    # Razorpay sends empty notes as `[]`, not `{}`.
    notes = payment.get("notes")
    if not isinstance(notes, Mapping):
        return None
    return text(notes, "order_id", "payment.notes.order_id", required=False)


def _payment_update(event: Event, order_id: str | None = None) -> PaymentUpdate:
    payment = _entity(event, "payment")
    status = _status(PAYMENT_STATUS, payment.get("status"), "payment.status")
    amount = integer(payment, "amount", "payment.amount")
    return PaymentUpdate(
        provider="razorpay",
        payment_id=required_text(payment, "id", "payment.id"),
        occurred_at=event.occurred_at,
        status=status,
        amount=amount,
        currency=currency_code(payment.get("currency"), "payment.currency"),
        order_id=order_id or _notes_order_id(payment),
        captured_amount=amount if status is PaymentStatus.SUCCEEDED else None,
    )


@registry.register("razorpay", *PAYMENT_EVENTS)
def payment(context: HandlerContext, event: Event) -> Outcome:
    return apply_payment_event(context, _payment_update(event))


@registry.register("razorpay", "order.paid")
def order_paid(context: HandlerContext, event: Event) -> Outcome:
    order = _entity(event, "order")
    receipt = text(order, "receipt", "order.receipt", required=False)
    return apply_payment_event(context, _payment_update(event, receipt))


@registry.register("razorpay", *REFUND_EVENTS)
def refund(context: HandlerContext, event: Event) -> Outcome:
    razorpay_refund = _entity(event, "refund")
    payment_id = required_text(razorpay_refund, "payment_id", "refund.payment_id")
    currency = currency_code(razorpay_refund.get("currency"), "refund.currency")
    status = _status(REFUND_STATUS, razorpay_refund.get("status"), "refund.status")
    payment = None
    if isinstance(dig(event.payload, "payload", "payment"), Mapping):
        # The event carries its payment as it is now: its amount and order. Not its
        # status (a refund proves the capture, whatever it says), nor its
        # amount_refunded (it counts refunds still pending).
        carried = _payment_update(event)
        if carried.payment_id != payment_id:
            raise MalformedEvent("refund.payment_id is not the payment the event carries")
        payment = replace(carried, status=None, captured_amount=carried.amount)
    return apply_refund_event(
        context,
        RefundUpdate(
            provider="razorpay",
            refund_id=required_text(razorpay_refund, "id", "refund.id"),
            payment_id=payment_id,
            status=status,
            amount=integer(razorpay_refund, "amount", "refund.amount"),
            currency=currency,
        ),
        event.occurred_at,
        payment,
    )
