"""Lemon Squeezy: orders. A Lemon Squeezy order is one payment, keyed by its id (`data.id`).

The shop's order id is `meta.custom_data.order_id`: the shop passes it when it
creates the checkout (`checkout_data.custom.order_id` in the API, or
`checkout[custom][order_id]` in a checkout URL), and Lemon Squeezy echoes it in
every order event. Without it the payment is recorded and no order moves.

Everything is read from the signed body: the status (`data.attributes.status`,
whatever the event's name), `total` and `refunded_amount` in minor units
(cents), `currency`. `refunded_amount` is cumulative; a `refunded` order that
reports none refunded all of its total.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookline.errors import MalformedEvent
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
from hookline.money import currency_code
from hookline.payments import PaymentStatus, PaymentUpdate

ORDER_STATUS = {
    "pending": PaymentStatus.PENDING,
    "failed": PaymentStatus.FAILED,
    "paid": PaymentStatus.SUCCEEDED,
    # Refunded money was paid first; `refunded_amount` says how much went back.
    "refunded": PaymentStatus.SUCCEEDED,
    "partial_refund": PaymentStatus.SUCCEEDED,
    # Blocked as fraud: no money is kept.
    "fraudulent": PaymentStatus.FAILED,
}
ORDER_EVENTS = ("order_created", "order_refunded")


def _order_id(meta: Mapping[str, Any]) -> str | None:
    custom = meta.get("custom_data")
    if not isinstance(custom, Mapping):
        return None
    return text(custom, "order_id", "meta.custom_data.order_id", required=False)


@registry.register("lemonsqueezy", *ORDER_EVENTS)
def order(context: HandlerContext, event: Event) -> Outcome:
    data = mapping(event.payload, "data")
    if data.get("type") != "orders":
        raise MalformedEvent("data.type is not orders")
    attributes = mapping(event.payload, "data", "attributes")
    status_name = attributes.get("status")
    if not isinstance(status_name, str) or status_name not in ORDER_STATUS:
        raise MalformedEvent("data.attributes.status is not a known status")
    status = ORDER_STATUS[status_name]
    total = integer(attributes, "total", "data.attributes.total")
    refunded = 0
    if attributes.get("refunded_amount") is not None:
        refunded = integer(attributes, "refunded_amount", "data.attributes.refunded_amount")
    if status_name == "refunded" and refunded == 0:
        refunded = total  # payloads from before `refunded_amount`: all of it went back
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="lemonsqueezy",
            payment_id=required_text(data, "id", "data.id"),
            occurred_at=event.occurred_at,
            status=status,
            amount=total,
            currency=currency_code(attributes.get("currency"), "data.attributes.currency"),
            order_id=_order_id(mapping(event.payload, "meta")),
            amount_refunded=refunded,
            captured_amount=total if status is PaymentStatus.SUCCEEDED else None,
        ),
    )
