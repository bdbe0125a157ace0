"""eSewa: a signed success redirect, applied from eSewa's transaction status API.

The queued document is the one eSewa signed; only its signed product_code,
total_amount and transaction_uuid are read (raw, as signed), and only to ask
the status API. What is applied is the API's answer:

- COMPLETE → succeeded, total_amount in paisa (NPR);
- PENDING, AMBIGUOUS → not settled yet: ProviderApiUnavailable (transient), so
  the event waits in SQS with backoff and asks again, and is never parked for it;
- FULL_REFUND → refunded (all of total_amount);
- PARTIAL_REFUND → partially_refunded; the status API reports no refunded
  amount, so none is recorded (the order stays paid; eSewa's merchant portal
  has the amount);
- CANCELED ("canceled/reversed from eSewa side") → canceled. A payment already
  succeeded never moves back, as for every provider;
- NOT_FOUND → ResourceNotFound: eSewa signed a success it does not know,
  which a human must look at (parked after the usual attempts).

The shop's order id is the transaction_uuid (the shop chose it when it
initiated the payment), and so is the payment's id.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from hookline.errors import MalformedEvent, ProviderApiUnavailable, ResourceNotFound
from hookline.handlers.base import Event, HandlerContext, Outcome, apply_payment_event
from hookline.handlers.registry import registry
from hookline.money import to_minor
from hookline.payments import PaymentStatus, PaymentUpdate
from hookline.providers import esewa

CURRENCY = "NPR"
PAYMENT_STATUS = {
    "COMPLETE": PaymentStatus.SUCCEEDED,
    "FULL_REFUND": PaymentStatus.REFUNDED,
    "PARTIAL_REFUND": PaymentStatus.PARTIALLY_REFUNDED,
    "CANCELED": PaymentStatus.CANCELED,
}
NOT_SETTLED = frozenset({"PENDING", "AMBIGUOUS"})
CAPTURED = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED}
)


def _same_amount(answered: object, signed: str) -> bool:
    try:
        return Decimal(str(answered)) == Decimal(signed)
    except InvalidOperation:
        return False


@registry.register("esewa", "payment")
def payment(context: HandlerContext, event: Event) -> Outcome:
    signed = esewa.signed_values(event.envelope.body)
    transaction_uuid = signed["transaction_uuid"]
    answer = context.fetch(esewa.API, esewa.status_read(signed))
    status_name = answer.get("status")
    if status_name in NOT_SETTLED:
        raise ProviderApiUnavailable(f"eSewa reports the payment {status_name}: asked again later")
    if status_name == "NOT_FOUND":
        raise ResourceNotFound("eSewa's status API does not know this signed transaction")
    if not isinstance(status_name, str) or status_name not in PAYMENT_STATUS:
        raise MalformedEvent("eSewa's status API answered no known status")
    # The answer is about what was asked, or it is about nothing this event says.
    if answer.get("transaction_uuid") != transaction_uuid or answer.get(
        "product_code"
    ) != signed.get("product_code"):
        raise MalformedEvent("eSewa's status API answered about another transaction")
    status = PAYMENT_STATUS[status_name]
    amount = to_minor(answer.get("total_amount"), CURRENCY, "status.total_amount")
    if not _same_amount(answer.get("total_amount"), signed["total_amount"]):
        raise MalformedEvent("eSewa's status API answered another amount than it signed")
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="esewa",
            payment_id=transaction_uuid,
            occurred_at=event.envelope.received_at,
            status=status,
            amount=amount,
            currency=CURRENCY,
            order_id=transaction_uuid,
            amount_refunded=amount if status is PaymentStatus.REFUNDED else 0,
            captured_amount=amount if status in CAPTURED else None,
        ),
    )
