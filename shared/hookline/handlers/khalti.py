"""Khalti: an unsigned callback, applied only from Khalti's lookup (POST epayment/lookup/).

The callback proves nothing, so nothing in it is read but the pidx it names
(the envelope's object id). The lookup's answer decides:

- Completed → succeeded, total_amount in paisa (NPR);
- Initiated → pending; Pending → processing;
- Refunded → refunded (all of total_amount);
- Partially Refunded → partially_refunded; the lookup reports no refunded
  amount (only `refunded: true`), so none is recorded and the order stays paid;
- Expired, User canceled → canceled (Khalti answers these with HTTP 400, the
  status in the body: the API declares it, `answer_statuses`);
- a 404 (Khalti knows no such pidx), or an answer with no status hookline knows
  (a 400 refusing the pidx) → `ignored`: anyone can forward a callback, and one
  Khalti does not confirm is not an event worth a human; never parked.

The lookup has no order id: the shop binds the pidx to its order when it
initiates the payment (`hookline.payments.expect_payment`). A payment with no
bound order is the event's own failure (MalformedEvent naming expect_payment),
parked after the usual attempts where an operator sees it, never applied
without its order.
"""

from __future__ import annotations

from hookline.errors import MalformedEvent, ResourceNotFound
from hookline.handlers.base import (
    Event,
    HandlerContext,
    Outcome,
    apply_payment_event,
    integer,
)
from hookline.handlers.registry import registry
from hookline.ledger import LedgerStatus
from hookline.observability import logger
from hookline.payments import PaymentStatus, PaymentUpdate
from hookline.providers import khalti

CURRENCY = "NPR"
PAYMENT_STATUS = {
    "Initiated": PaymentStatus.PENDING,
    "Pending": PaymentStatus.PROCESSING,
    "Completed": PaymentStatus.SUCCEEDED,
    "Refunded": PaymentStatus.REFUNDED,
    "Partially Refunded": PaymentStatus.PARTIALLY_REFUNDED,
    "Expired": PaymentStatus.CANCELED,
    "User canceled": PaymentStatus.CANCELED,
}
CAPTURED = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED}
)


@registry.register("khalti", "payment")
def payment(context: HandlerContext, event: Event) -> Outcome:
    pidx = event.envelope.object_id
    if pidx is None:
        raise MalformedEvent("the Khalti event names no pidx")
    try:
        answer = context.fetch(khalti.API, khalti.lookup_read(pidx))
    except ResourceNotFound:
        # An unsigned callback about a pidx Khalti does not confirm proves nothing.
        return Outcome(LedgerStatus.IGNORED)
    status_name = answer.get("status")
    if not isinstance(status_name, str) or status_name not in PAYMENT_STATUS:
        logger.warning(
            "Khalti's lookup confirmed nothing: no known status",
            extra={"provider": "khalti", "event_id": event.envelope.event_id},
        )
        return Outcome(LedgerStatus.IGNORED)
    if answer.get("pidx") != pidx:
        raise MalformedEvent("Khalti's lookup answered about another pidx")
    status = PAYMENT_STATUS[status_name]
    amount = integer(answer, "total_amount", "lookup.total_amount")
    outcome = apply_payment_event(
        context,
        PaymentUpdate(
            provider="khalti",
            payment_id=pidx,
            occurred_at=event.envelope.received_at,
            status=status,
            amount=amount,
            currency=CURRENCY,
            # Never from the callback: the order the shop bound (expect_payment).
            order_id=None,
            amount_refunded=amount if status is PaymentStatus.REFUNDED else 0,
            captured_amount=amount if status in CAPTURED else None,
        ),
    )
    if outcome.order_id is None:
        # Raised before commit: the whole transaction, payment row included, rolls back.
        raise MalformedEvent(
            f"Khalti payment {pidx} is bound to no order: the shop must call"
            " hookline.payments.expect_payment (or insert the payments row) when it"
            " initiates the payment"
        )
    return outcome
