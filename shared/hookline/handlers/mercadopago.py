"""Mercado Pago: thin `payment` events, applied from the payment fetched from the API.

Mercado Pago signs the id, not the body, so the body is never read: the payment
is the envelope's object id (the signed data.id) and everything applied comes
from the API's answer. The shop's order id is the payment's `external_reference`.
"""

from __future__ import annotations

from datetime import datetime

from hookline.errors import MalformedEvent
from hookline.handlers.base import (
    Event,
    HandlerContext,
    Outcome,
    apply_payment_event,
    required_text,
    text,
)
from hookline.handlers.registry import registry
from hookline.money import currency_code, to_minor
from hookline.payments import PaymentStatus, PaymentUpdate
from hookline.providers import mercadopago

PAYMENT_STATUS = {
    "pending": PaymentStatus.PENDING,
    "authorized": PaymentStatus.PROCESSING,
    "in_process": PaymentStatus.PROCESSING,
    "in_mediation": PaymentStatus.PROCESSING,
    "approved": PaymentStatus.SUCCEEDED,
    "rejected": PaymentStatus.FAILED,
    "cancelled": PaymentStatus.CANCELED,
    "refunded": PaymentStatus.REFUNDED,
    "charged_back": PaymentStatus.REFUNDED,
}


@registry.register("mercadopago", "payment")
def payment(context: HandlerContext, event: Event) -> Outcome:
    payment_id = event.envelope.object_id
    if payment_id is None:
        # The body's data.id is unsigned: without the signed one there is nothing to fetch.
        raise MalformedEvent("the event has no signed data.id")
    fetched = context.fetch(mercadopago.API, mercadopago.payment_read(payment_id))
    status_name = fetched.get("status")
    if not isinstance(status_name, str) or status_name not in PAYMENT_STATUS:
        raise MalformedEvent("the fetched payment has no known status")
    status = PAYMENT_STATUS[status_name]
    currency = currency_code(fetched.get("currency_id"), "payment.currency_id")
    amount = to_minor(fetched.get("transaction_amount"), currency, "payment.transaction_amount")
    refunded = to_minor(
        fetched.get("transaction_amount_refunded") or 0,
        currency,
        "payment.transaction_amount_refunded",
    )
    captured = amount if status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED) else None
    if status is PaymentStatus.REFUNDED and refunded == 0:
        refunded = amount  # a chargeback reports no refunded amount: all of it went back
    updated = fetched.get("date_last_updated")
    occurred_at = event.occurred_at
    if isinstance(updated, str):
        try:
            occurred_at = datetime.fromisoformat(updated)
        except ValueError:
            raise MalformedEvent("payment.date_last_updated is not a timestamp") from None
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="mercadopago",
            payment_id=required_text(fetched, "id", "payment.id"),
            occurred_at=occurred_at,
            status=status,
            amount=amount,
            currency=currency,
            order_id=text(
                fetched, "external_reference", "payment.external_reference", required=False
            ),
            amount_refunded=refunded,
            captured_amount=captured,
        ),
    )
