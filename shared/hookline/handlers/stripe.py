"""Stripe: payment intents, refunds on charges, completed Checkout sessions.

The shop's order id travels in `metadata.order_id` (payment intents and
charges) or `client_reference_id` (Checkout sessions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookline.handlers.base import (
    Event,
    HandlerContext,
    Outcome,
    apply_payment_event,
    integer,
    mapping,
    required_text,
    text,
)
from hookline.handlers.registry import registry
from hookline.ledger import LedgerStatus
from hookline.money import currency_code
from hookline.payments import PaymentStatus, PaymentUpdate

PAYMENT_INTENT_STATUS = {
    "payment_intent.created": PaymentStatus.PENDING,
    "payment_intent.requires_action": PaymentStatus.PENDING,
    "payment_intent.processing": PaymentStatus.PROCESSING,
    "payment_intent.amount_capturable_updated": PaymentStatus.PROCESSING,
    "payment_intent.succeeded": PaymentStatus.SUCCEEDED,
    "payment_intent.payment_failed": PaymentStatus.FAILED,
    "payment_intent.canceled": PaymentStatus.CANCELED,
}


def _object(event: Event) -> Mapping[str, Any]:
    return mapping(event.payload, "data", "object")


def _order_id(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    return text(metadata, "order_id", "metadata.order_id", required=False)


@registry.register("stripe", *PAYMENT_INTENT_STATUS)
def payment_intent(context: HandlerContext, event: Event) -> Outcome:
    intent = _object(event)
    status = PAYMENT_INTENT_STATUS[event.event_type]
    amount = integer(intent, "amount", "data.object.amount")
    captured = None
    if status is PaymentStatus.SUCCEEDED:
        # A partial capture receives less than the amount authorized.
        captured = amount
        if intent.get("amount_received") is not None:
            captured = integer(intent, "amount_received", "data.object.amount_received")
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="stripe",
            payment_id=required_text(intent, "id", "data.object.id"),
            occurred_at=event.occurred_at,
            status=status,
            amount=amount,
            currency=currency_code(intent.get("currency"), "data.object.currency"),
            order_id=_order_id(intent),
            captured_amount=captured,
        ),
    )


@registry.register("stripe", "charge.refunded")
def charge_refunded(context: HandlerContext, event: Event) -> Outcome:
    charge = _object(event)
    # Payments are keyed by payment intent; a charge without one is its own payment.
    payment_id = text(charge, "payment_intent", "data.object.payment_intent", required=False)
    amount = integer(charge, "amount", "data.object.amount")
    # Refunded money was captured: all of `amount` unless the capture was partial.
    captured = amount
    if charge.get("amount_captured") is not None:
        captured = integer(charge, "amount_captured", "data.object.amount_captured")
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="stripe",
            payment_id=payment_id or required_text(charge, "id", "data.object.id"),
            occurred_at=event.occurred_at,
            amount=amount,
            currency=currency_code(charge.get("currency"), "data.object.currency"),
            order_id=_order_id(charge),
            amount_refunded=integer(charge, "amount_refunded", "data.object.amount_refunded"),
            captured_amount=captured,
        ),
    )


@registry.register("stripe", "checkout.session.completed")
def checkout_session_completed(context: HandlerContext, event: Event) -> Outcome:
    session = _object(event)
    payment_id = text(session, "payment_intent", "data.object.payment_intent", required=False)
    payment_status = session.get("payment_status")
    order_id = text(
        session, "client_reference_id", "data.object.client_reference_id", required=False
    )
    if payment_status == "no_payment_required" and (order_id or _order_id(session)):
        # A free order: nothing was charged, and the session itself is its payment
        # (0 captured), so the order becomes `paid` when its amount is 0 too.
        payment_id = required_text(session, "id", "data.object.id")
        payment_status = "paid"
    if payment_id is None or payment_status == "no_payment_required":
        # A subscription's session carries no payment intent to track here.
        return Outcome(LedgerStatus.IGNORED)
    paid = payment_status == "paid"
    amount = integer(session, "amount_total", "data.object.amount_total")
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="stripe",
            payment_id=payment_id,
            occurred_at=event.occurred_at,
            # "unpaid" means a delayed method (bank debit) is still processing.
            status=PaymentStatus.SUCCEEDED if paid else PaymentStatus.PROCESSING,
            amount=amount,
            currency=currency_code(session.get("currency"), "data.object.currency"),
            order_id=order_id or _order_id(session),
            captured_amount=amount if paid else None,
        ),
    )
