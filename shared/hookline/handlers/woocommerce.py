"""WooCommerce: the order system itself. Orders are keyed by WooCommerce's order id (as text).

A WooCommerce order is both the order and its one payment (`provider_payment_id`
is the order id), so an order event creates the order row when the shop has
not. Like every writer, it locks the payment row before the order row.

WooCommerce signs the body, not the topic. So the body alone decides, whatever
the topic says: `order.created`, `order.updated` and, through the registry's
fallback, every other topic go through `by_body`. An order body (the REST v3
order: `id`, `order_key`, `status`, `currency`, `total`, `refunds`,
`date_modified_gmt`) applies as an order; any other body is `ignored`.

Status: `pending`, `on-hold` and `checkout-draft` are pending; `processing` and
`completed` are paid (but processing while `date_paid_gmt` is null, as a
cash-on-delivery order is, is not money yet); `failed` failed; `cancelled`
cancels the order; `refunded` and the `refunds` list say what went back (each
refund's `total` is negative, as WooCommerce writes it). A status a plugin
adds changes no payment status; its amounts and refunds still apply.

WooCommerce's bodies are dated by `date_modified_gmt`; one older than the last
applied changes nothing. A newer one is WooCommerce's word on the order now:

- paid (`processing`/`completed` with `date_paid_gmt`) after `cancelled`: the
  order is reopened (hold-stock canceled an unpaid order, the gateway's late
  payment then reopened it: the money was taken);
- until it is paid, an order hookline created from WooCommerce's bodies
  (`managed_by`) follows their `total` and `currency` (an order edited before
  payment); an order the shop created itself keeps its own amount, and so does
  any order once paid, so a payment that differs from it is an amount mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
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
    follow_managed_order,
    lock_payment,
    reopen_order,
)
from hookline.providers.woocommerce import order_number, order_status

ORDER_STATUS = {
    "pending": PaymentStatus.PENDING,
    "on-hold": PaymentStatus.PENDING,
    "checkout-draft": PaymentStatus.PENDING,
    "processing": PaymentStatus.SUCCEEDED,
    "completed": PaymentStatus.SUCCEEDED,
    # Refunded money was paid first; the refunds say how much went back.
    "refunded": PaymentStatus.SUCCEEDED,
    "failed": PaymentStatus.FAILED,
    "cancelled": PaymentStatus.CANCELED,
}
PAID = frozenset({"processing", "completed"})
# Registered by name so `event_types` lists them (`hookline send`, docs).
ORDER_TOPICS = ("order.created", "order.updated")


def is_order(body: Mapping[str, Any]) -> bool:
    """Whether the signed body is a REST order (a product or a coupon has no order key)."""
    return all(name in body for name in ("id", "order_key", "status", "currency", "total"))


@registry.register("woocommerce", *ORDER_TOPICS)
@registry.register_fallback("woocommerce")
def by_body(context: HandlerContext, event: Event) -> Outcome:
    if not is_order(event.payload):
        # The topic is unsigned: it may promise an order the body is not. The body decides.
        logger.warning(
            "woocommerce body is not an order; ignored",
            extra={"event_id": event.envelope.event_id, "topic": event.event_type},
        )
        return Outcome(LedgerStatus.IGNORED)
    return _order(context, event)


def _status(order: Mapping[str, Any], name: str) -> PaymentStatus | None:
    status = ORDER_STATUS.get(name)
    if name in PAID and "date_paid_gmt" in order and order["date_paid_gmt"] is None:
        # Processing before payment (cash on delivery): WooCommerce says not paid yet.
        return PaymentStatus.PROCESSING
    return status


def _order(context: HandlerContext, event: Event) -> Outcome:
    order = event.payload
    order_id = str(order_number(order))
    name = order_status(order)
    currency = currency_code(order.get("currency"), "currency")
    amount = to_minor(order.get("total"), currency, "total")
    refunds = _refunds(order, order_id, currency)
    status = _status(order, name)
    # Payment first, then the order. Its state before this event says whether a
    # cancellation is news or an older state arriving late.
    before = lock_payment(context.locks, "woocommerce", order_id)
    refunded = None
    for refund in refunds:
        _, refunded = apply_refund(context.locks, refund)
    if name == "refunded":
        # The status says all of it went back, whether or not the refund records came along.
        refunded = max(refunded or 0, amount)
    late = (
        before is not None
        and before.last_event_at is not None
        and event.occurred_at is not None
        and event.occurred_at < before.last_event_at
    )
    ensure_order(context.locks, order_id, amount, currency, managed_by="woocommerce")
    if not late and (before is None or before.captured_amount is None):
        # Edited before payment: the order is worth what WooCommerce says now. Once paid,
        # a changed total no longer follows (what was paid stays what the order asked).
        follow_managed_order(context.locks, order_id, "woocommerce", amount, currency)
    outcome = apply_payment_event(
        context,
        PaymentUpdate(
            provider="woocommerce",
            payment_id=order_id,
            occurred_at=event.occurred_at,
            status=status,
            amount=amount,
            currency=currency,
            order_id=order_id,
            amount_refunded=refunded,
            captured_amount=amount if status is PaymentStatus.SUCCEEDED else None,
        ),
    )
    if late:
        return outcome
    if name == "cancelled" and cancel_order(context.locks, order_id):
        return Outcome(LedgerStatus.APPLIED, order_id=order_id, order_status="canceled")
    if status is PaymentStatus.SUCCEEDED and name in PAID:
        reopened = reopen_order(context.locks, order_id)
        if reopened is not None:
            return Outcome(
                LedgerStatus.APPLIED,
                order_id=order_id,
                order_status=reopened.after.status.value,
                amount_mismatch=reopened.became_mismatch,
            )
    return outcome


def _refunds(order: Mapping[str, Any], order_id: str, currency: str) -> list[RefundUpdate]:
    """The order's `refunds` (`{id, reason, total: "-10.00"}`), all read before any write.

    WooCommerce records a refund once it is done (a gateway refund that fails
    creates none), so each one listed succeeded.
    """
    refunds = order.get("refunds")
    if refunds is None:
        return []
    if not isinstance(refunds, list):
        raise MalformedEvent("refunds is not a list")
    updates = []
    for index, refund in enumerate(refunds):
        where = f"refunds[{index}]"
        if not isinstance(refund, Mapping):
            raise MalformedEvent(f"{where} is not an object")
        updates.append(
            RefundUpdate(
                provider="woocommerce",
                refund_id=required_text(refund, "id", f"{where}.id"),
                payment_id=order_id,
                status=RefundStatus.SUCCEEDED,
                amount=to_minor(_negated(refund.get("total")), currency, f"{where}.total"),
                currency=currency,
            )
        )
    return updates


def _negated(value: object) -> object:
    """A refund total as WooCommerce writes it (`"-10.00"`), made positive; anything
    positive already is passed on as it is (to_minor refuses what is not an amount)."""
    if isinstance(value, str) and value.startswith("-"):
        return value[1:]
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool) and value < 0:
        return -value
    return value
