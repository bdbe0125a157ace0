"""Shopify: the order system itself. Orders are keyed by Shopify's order id (as text).

Shopify's order is both the order and its one payment (`provider_payment_id` is
the order id), so an order event creates the order row when the shop has not.
Like every writer, it locks the payment row before the order row.

Shopify signs the body, not the topic or the event id. So the body alone decides,
whatever the topic: every Shopify event (the order and refund topics, and through
the registry's fallback every other topic) goes through `by_body_shape`. An order
body applies as an order (`financial_status`, `total_price`, `currency`,
`cancelled_at`, `updated_at`, and its embedded `refunds`), a refund body as a
refund, anything else is `ignored`, never malformed: a body relabelled with a
topic it does not match is not the body's own fault. A delivery re-sent under
another topic can only repeat what it already said; one re-sent first under an
unhandled topic (taking its event id in the ledger) still applies what it says.

One merchant action sends several topics with one event id (a refund: an
`orders/updated` and a `refunds/create`); the ledger keeps whichever comes
first. The order body carries its refunds, each applied exactly as its
`refunds/create` (refunds are upserted by refund id), so either one records it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
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
from hookline.observability import logger
from hookline.payments import (
    PaymentStatus,
    PaymentUpdate,
    RefundStatus,
    RefundUpdate,
    apply_refund,
    cancel_order,
    ensure_order,
    hold_payment,
)
from hookline.providers.base import iso_datetime
from hookline.providers.shopify import event_time

FINANCIAL_STATUS = {
    "pending": PaymentStatus.PENDING,
    "authorized": PaymentStatus.PROCESSING,
    "partially_paid": PaymentStatus.PROCESSING,
    "paid": PaymentStatus.SUCCEEDED,
    "partially_refunded": PaymentStatus.SUCCEEDED,
    "refunded": PaymentStatus.SUCCEEDED,
    "voided": PaymentStatus.CANCELED,
}

# Topics whose genuine body is an order (Shopify's REST order JSON), or a refund. They
# are registered by name so `event_types` lists them (`hookline send`, recovery).
ORDER_TOPICS = (
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/cancelled",
    "orders/fulfilled",
    "orders/partially_fulfilled",
)
REFUND_TOPICS = ("refunds/create",)


class BodyShape(StrEnum):
    ORDER = "order"
    REFUND = "refund"


def body_shape(body: Mapping[str, Any]) -> BodyShape | None:
    """What the signed body is, whatever the topic says: a refund names its order and
    carries transactions; an order has a total and a financial status and names no order."""
    if "order_id" in body and isinstance(body.get("transactions"), list):
        return BodyShape.REFUND
    if "order_id" not in body and "total_price" in body and "financial_status" in body:
        return BodyShape.ORDER
    return None


def _claimed_shape(topic: str) -> BodyShape | None:
    """What a genuine delivery under `topic` carries (None: a topic hookline does not use)."""
    if topic in REFUND_TOPICS:
        return BodyShape.REFUND
    if topic in ORDER_TOPICS:
        return BodyShape.ORDER
    return None


@registry.register("shopify", *ORDER_TOPICS, *REFUND_TOPICS)
@registry.register_fallback("shopify")
def by_body_shape(context: HandlerContext, event: Event) -> Outcome:
    shape = body_shape(event.payload)
    claimed = _claimed_shape(event.event_type)
    if shape is not claimed:
        # The topic is unsigned: a body other than its topic promises means a relabelled
        # delivery. Logged without the body; the body decides.
        logger.warning(
            "shopify topic does not match the signed body; the body decides",
            extra={
                "event_id": event.envelope.event_id,
                "topic": event.event_type,
                "shape": shape or "neither order nor refund",
            },
        )
    if shape is BodyShape.REFUND:
        return _refund(context, event)
    if shape is BodyShape.ORDER:
        return _order(context, event)
    return Outcome(LedgerStatus.IGNORED)


def _order(context: HandlerContext, event: Event) -> Outcome:
    order = event.payload
    order_id = required_text(order, "id", "id")
    currency = currency_code(order.get("currency"), "currency")
    amount = to_minor(order.get("total_price"), currency, "total_price")
    refunds = _embedded_refunds(order, order_id)
    # Payment first, then the order: the lock travels with the statements below.
    hold_payment(context.locks, "shopify", order_id)
    refunded = None
    for refund in refunds:
        # As its refunds/create applies it (the payment lock is held already).
        _, refunded = apply_refund(context.locks, refund)
    ensure_order(context.locks, order_id, amount, currency)
    # Canceled only by the body's own cancelled_at, never by an orders/cancelled topic.
    canceled = iso_datetime(order.get("cancelled_at"), "cancelled_at") is not None and (
        cancel_order(context.locks, order_id)
    )
    status = FINANCIAL_STATUS.get(str(order.get("financial_status")))
    outcome = apply_payment_event(
        context,
        PaymentUpdate(
            provider="shopify",
            payment_id=order_id,
            occurred_at=event_time(order),
            status=status,
            amount=amount,
            currency=currency,
            order_id=order_id,
            # Shopify's order total is what a paid order captured.
            captured_amount=amount if status is PaymentStatus.SUCCEEDED else None,
            amount_refunded=refunded,
        ),
    )
    if canceled and outcome.status is LedgerStatus.STALE:
        # Nothing new about the payment, but the cancellation itself is news.
        return Outcome(LedgerStatus.APPLIED, order_id=order_id, order_status="canceled")
    return outcome


def _embedded_refunds(order: Mapping[str, Any], order_id: str) -> list[RefundUpdate]:
    """The order's `refunds`, read as their refunds/create bodies are (all before any write)."""
    refunds = order.get("refunds")
    if refunds is None:
        return []
    if not isinstance(refunds, list):
        raise MalformedEvent("refunds is not a list")
    updates = []
    for index, refund in enumerate(refunds):
        if not isinstance(refund, Mapping) or body_shape(refund) is not BodyShape.REFUND:
            raise MalformedEvent(f"refunds[{index}] is not a refund")
        update = _refund_update(refund, f"refunds[{index}].")
        if update.payment_id != order_id:
            raise MalformedEvent(f"refunds[{index}] is a refund of another order")
        updates.append(update)
    return updates


def _refund_update(refund: Mapping[str, Any], where: str = "") -> RefundUpdate:
    """One refund body (a refunds/create body, or an entry of an order's `refunds`).

    Its amount is the sum of its successful refund transactions, all in one
    currency. With none yet but one pending it is `pending`; with refund
    transactions that all failed, `failed`. A later sighting with more of it
    settled raises the amount (apply_refund lets a succeeded refund only grow).
    """
    transactions = refund.get("transactions")
    if not isinstance(transactions, list):
        raise MalformedEvent(f"{where}transactions is missing or not a list")
    amount, currency = 0, None
    succeeded = pending = tried = False
    for index, transaction in enumerate(transactions):
        field = f"{where}transactions[{index}]"
        if not isinstance(transaction, Mapping):
            raise MalformedEvent(f"{field} is not an object")
        if transaction.get("kind") != "refund":
            continue
        tried = True
        pending = pending or transaction.get("status") == "pending"
        if transaction.get("status") != "success":
            continue
        succeeded = True
        leg_currency = currency_code(transaction.get("currency"), f"{field}.currency")
        if currency is not None and leg_currency != currency:
            # Summing yen and dollars is no amount at all.
            raise MalformedEvent(f"{where}transactions refund in more than one currency")
        currency = leg_currency
        amount += to_minor(transaction.get("amount"), currency, f"{field}.amount")
    if succeeded:
        status = RefundStatus.SUCCEEDED
    elif pending or not tried:
        status = RefundStatus.PENDING
    else:
        status = RefundStatus.FAILED
    return RefundUpdate(
        provider="shopify",
        refund_id=required_text(refund, "id", f"{where}id"),
        payment_id=required_text(refund, "order_id", f"{where}order_id"),
        status=status,
        amount=amount,
        currency=currency,
    )


def _refund(context: HandlerContext, event: Event) -> Outcome:
    refund = event.payload
    update = _refund_update(refund)
    _, total = apply_refund(context.locks, update)
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="shopify",
            payment_id=update.payment_id,
            occurred_at=event_time(refund),
            currency=update.currency,
            order_id=update.payment_id,
            amount_refunded=total,
        ),
    )
