"""Adyen standard webhooks: authorisations, captures, cancellations, refunds, chargebacks.

Only the eight HMAC-signed fields (hookline.providers.adyen) are read: the
payment is the `pspReference` of its AUTHORISATION, which a modification names
as its `originalReference`; money is `amount.value` (minor units) and
`amount.currency`; the outcome `success`. `eventDate`, `reason` and
`additionalData` are unsigned and never read.

The shop's order id is the AUTHORISATION's `merchantReference`. A
modification's merchantReference is the reference of the modification request
(`reference` on /payments/{psp}/refunds, /captures...), not the order's, so a
modification never binds an order: delivered before its AUTHORISATION (Adyen
does not promise an order), it leaves the payment unbound until then.

How the merchant account captures is configuration (`configure`, from the
consumer's `ADYEN_CAPTURE`):

- "immediate" (Adyen's default): AUTHORISATION success `true` is the money,
  the payment succeeded, captured in full.
- "manual" (delayed or manual capture): AUTHORISATION success `true` only
  reserves the money: the payment is `processing`, its amount known, nothing
  captured. CAPTURE `true` is the money: succeeded, `amount` captured (a
  partial capture leaves the order an amount mismatch, never paid).

In both, AUTHORISATION `false` fails the payment, and:

- CAPTURE `true`: the payment succeeded, `amount` captured.
- CANCELLATION `true`: the payment was canceled (never undoes a success).
- REFUND `true`: a refund of `amount`, recorded by the refund's own pspReference,
  so several partial refunds add up and a retried notification counts once.
- CANCEL_OR_REFUND `true`: a full refund (recorded by its pspReference) if the
  payment was captured, which under immediate capture it was; otherwise a
  cancellation, whose refund is kept pending: a CAPTURE delivered after it
  (Adyen captured first) settles it as a refund.
- CHARGEBACK `true`: the money went back to the shopper: recorded as a refund
  of `amount` by the chargeback's pspReference (every event of one dispute has
  the same one, so it counts once).
- A modification with success `false` (a capture, cancellation or refund Adyen
  refused) changed nothing: recorded as `ignored`. Other event codes have no
  handler and are `ignored` too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hookline.errors import ConfigurationError, MalformedEvent
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
from hookline.ledger import LedgerStatus
from hookline.money import currency_code
from hookline.payments import (
    CAPTURED,
    PaymentStatus,
    PaymentUpdate,
    RefundStatus,
    RefundUpdate,
    apply_refund,
    lock_payment,
    pending_refunds,
)
from hookline.providers.adyen import notification_item

CAPTURE_MODES = ("immediate", "manual")
_capture = "immediate"


def configure(capture: str) -> None:
    """How the merchant account captures: "immediate" (an authorisation is the money)
    or "manual" (only a CAPTURE is). The consumer calls this once at start."""
    global _capture
    if capture not in CAPTURE_MODES:
        raise ConfigurationError(f"Adyen capture must be one of {', '.join(CAPTURE_MODES)}")
    _capture = capture


def capture_mode() -> str:
    """The mode `configure` set ("immediate" unless told otherwise)."""
    return _capture


def _item(event: Event) -> Mapping[str, Any]:
    return notification_item(event.payload)


def _succeeded(item: Mapping[str, Any]) -> bool:
    success = item.get("success")
    if success not in ("true", "false"):
        raise MalformedEvent("success is neither true nor false")
    return bool(success == "true")


def _money(item: Mapping[str, Any]) -> tuple[int, str]:
    amount = mapping(item, "amount")
    return (
        integer(amount, "value", "amount.value"),
        currency_code(amount.get("currency"), "amount.currency"),
    )


def _modified_payment(item: Mapping[str, Any]) -> str:
    return required_text(item, "originalReference", "originalReference")


@registry.register("adyen", "AUTHORISATION")
def authorisation(context: HandlerContext, event: Event) -> Outcome:
    item = _item(event)
    amount, currency = _money(item)
    status = PaymentStatus.FAILED
    if _succeeded(item):
        status = PaymentStatus.SUCCEEDED if _capture == "immediate" else PaymentStatus.PROCESSING
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="adyen",
            payment_id=required_text(item, "pspReference", "pspReference"),
            # No signed time: hookline's own receipt time dates what it learned.
            occurred_at=event.envelope.received_at,
            status=status,
            amount=amount,
            currency=currency,
            order_id=text(item, "merchantReference", "merchantReference", required=False),
            captured_amount=amount if status is PaymentStatus.SUCCEEDED else None,
        ),
    )


@registry.register("adyen", "CAPTURE")
def capture(context: HandlerContext, event: Event) -> Outcome:
    item = _item(event)
    if not _succeeded(item):
        return Outcome(LedgerStatus.IGNORED)
    amount, currency = _money(item)
    payment_id = _modified_payment(item)
    refunded = None
    for pending in pending_refunds(context.locks, "adyen", payment_id):
        # A CANCEL_OR_REFUND delivered before this capture found none, yet Adyen
        # captured first (a canceled authorisation is never captured): it refunded
        # what was captured, never more, whatever amount its notification named.
        settled = replace(
            pending, status=RefundStatus.SUCCEEDED, amount=min(pending.amount, amount)
        )
        _, refunded = apply_refund(context.locks, settled)
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="adyen",
            payment_id=payment_id,
            occurred_at=event.envelope.received_at,
            status=PaymentStatus.SUCCEEDED,
            currency=currency,
            captured_amount=amount,
            amount_refunded=refunded,
        ),
    )


@registry.register("adyen", "CANCELLATION")
def cancellation(context: HandlerContext, event: Event) -> Outcome:
    item = _item(event)
    if not _succeeded(item):
        return Outcome(LedgerStatus.IGNORED)
    # A cancellation moves no money: its amount, if any, is not read.
    return _cancel(context, event, _modified_payment(item))


def _cancel(context: HandlerContext, event: Event, payment_id: str) -> Outcome:
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="adyen",
            payment_id=payment_id,
            occurred_at=event.envelope.received_at,
            status=PaymentStatus.CANCELED,
        ),
    )


@registry.register("adyen", "REFUND", "CHARGEBACK")
def refund(context: HandlerContext, event: Event) -> Outcome:
    item = _item(event)
    if not _succeeded(item):
        return Outcome(LedgerStatus.IGNORED)
    amount, currency = _money(item)
    return _money_back(context, event, _modified_payment(item), amount, currency)


# Reversals hookline does not undo on its own: each needs a human to look (a counted
# capture or chargeback stays counted). Raised as the event's own failure, so it is
# parked where an operator sees it (ParkedEventsAlarm), never silently ignored.
NEEDS_A_HUMAN = (
    "CAPTURE_FAILED",
    "REFUND_FAILED",
    "REFUNDED_REVERSED",
    "CHARGEBACK_REVERSED",
    "SECOND_CHARGEBACK",
)


@registry.register("adyen", *NEEDS_A_HUMAN)
def needs_a_human(context: HandlerContext, event: Event) -> Outcome:
    if not _succeeded(_item(event)):
        return Outcome(LedgerStatus.IGNORED)
    raise MalformedEvent(
        f"Adyen {event.event_type} reverses money hookline already counted: settle the"
        " payment by hand, then resolve this event"
    )


@registry.register("adyen", "CANCEL_OR_REFUND")
def cancel_or_refund(context: HandlerContext, event: Event) -> Outcome:
    item = _item(event)
    if not _succeeded(item):
        return Outcome(LedgerStatus.IGNORED)
    amount, currency = _money(item)
    payment_id = _modified_payment(item)
    # Which of the two Adyen did follows from the payment, read under its lock.
    payment = lock_payment(context.locks, "adyen", payment_id)
    captured = payment is not None and (
        payment.captured_amount is not None or payment.status in CAPTURED
    )
    if _capture == "manual" and not captured:
        # Canceled, as far as hookline knows. Kept as a pending refund: a capture
        # delivered after this notification proves it was a refund (`capture`).
        apply_refund(
            context.locks,
            RefundUpdate(
                provider="adyen",
                refund_id=required_text(item, "pspReference", "pspReference"),
                payment_id=payment_id,
                status=RefundStatus.PENDING,
                amount=amount,
                currency=currency,
            ),
        )
        return _cancel(context, event, payment_id)
    if payment is not None and payment.money_known:
        # A full refund of the money the payment moved: a partial capture refunds
        # what was captured, not the authorised amount the notification may name.
        amount = payment.money
    return _money_back(context, event, payment_id, amount, currency)


def _money_back(
    context: HandlerContext, event: Event, payment_id: str, amount: int, currency: str
) -> Outcome:
    """A refund (or chargeback) of `amount`, recorded by the event's own pspReference."""
    item = _item(event)
    return apply_refund_event(
        context,
        RefundUpdate(
            provider="adyen",
            refund_id=required_text(item, "pspReference", "pspReference"),
            payment_id=payment_id,
            status=RefundStatus.SUCCEEDED,
            amount=amount,
            currency=currency,
        ),
        event.envelope.received_at,
    )
