"""Mollie: an unsigned `id=tr_...`, applied only from GET /v2/payments/{id}.

Everything applied comes from Mollie's answer:

- open → pending; pending, authorized → processing; paid → succeeded;
  failed → failed; canceled, expired → canceled;
- amount {"currency", "value": "10.00"} → minor units; amountRefunded (and
  amountChargedBack: the money went back either way) → the payment's
  cumulative refunded amount, so refunds after paid show as
  partially_refunded / refunded;
- the shop's order id is metadata.order_id, set by the shop when it created
  the payment (from the API, so trusted);
- a 404 (Mollie knows no such payment) → `ignored`: anyone can post an id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookline.errors import MalformedEvent, ResourceNotFound
from hookline.handlers.base import (
    Event,
    HandlerContext,
    Outcome,
    apply_payment_event,
    mapping,
    required_text,
    text,
)
from hookline.handlers.registry import registry
from hookline.ledger import LedgerStatus
from hookline.money import currency_code, to_minor
from hookline.payments import PaymentStatus, PaymentUpdate
from hookline.providers import mollie

PAYMENT_STATUS = {
    "open": PaymentStatus.PENDING,
    "pending": PaymentStatus.PROCESSING,
    "authorized": PaymentStatus.PROCESSING,
    "paid": PaymentStatus.SUCCEEDED,
    "failed": PaymentStatus.FAILED,
    "canceled": PaymentStatus.CANCELED,
    "expired": PaymentStatus.CANCELED,
}


def _money(answer: Mapping[str, Any], key: str, currency: str) -> int:
    """An optional amount object in `currency`, 0 when absent."""
    value = answer.get(key)
    if value is None:
        return 0
    amount = mapping(answer, key)
    if currency_code(amount.get("currency"), f"payment.{key}.currency") != currency:
        raise MalformedEvent(f"payment.{key} is in another currency than the payment")
    return to_minor(amount.get("value"), currency, f"payment.{key}.value")


@registry.register("mollie", "payment")
def payment(context: HandlerContext, event: Event) -> Outcome:
    payment_id = event.envelope.object_id
    if payment_id is None:
        raise MalformedEvent("the Mollie event names no payment")
    try:
        answer = context.fetch(mollie.API, mollie.payment_read(payment_id))
    except ResourceNotFound:
        # Anyone can post an id: one Mollie does not know is nobody's event.
        return Outcome(LedgerStatus.IGNORED)
    if required_text(answer, "id", "payment.id") != payment_id:
        raise MalformedEvent("Mollie answered about another payment")
    status_name = answer.get("status")
    if not isinstance(status_name, str) or status_name not in PAYMENT_STATUS:
        raise MalformedEvent("the fetched payment has no known status")
    status = PAYMENT_STATUS[status_name]
    amount_object = mapping(answer, "amount")
    currency = currency_code(amount_object.get("currency"), "payment.amount.currency")
    amount = to_minor(amount_object.get("value"), currency, "payment.amount.value")
    refunded = _money(answer, "amountRefunded", currency) + _money(
        answer, "amountChargedBack", currency
    )
    metadata = answer.get("metadata")
    order_id = (
        text(metadata, "order_id", "payment.metadata.order_id", required=False)
        if isinstance(metadata, Mapping)
        else None
    )
    paid = status is PaymentStatus.SUCCEEDED or refunded > 0
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="mollie",
            payment_id=payment_id,
            occurred_at=event.envelope.received_at,
            status=status,
            amount=amount,
            currency=currency,
            order_id=order_id,
            amount_refunded=refunded,
            captured_amount=amount if paid else None,
        ),
    )
