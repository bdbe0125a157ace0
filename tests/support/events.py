"""Envelopes as the receiver queues them, for the consumer's tests and benchmark.

Bodies follow each provider's documented event shapes; object ids follow
DESIGN.md's ordering keys so message groups are what production would use.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hookline.envelope import Envelope

# An hour ago: the consumer compares event times with the real clock (the orphan
# deadline), so a fixed date would turn into parked events once it is 72 h old.
T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
_ids = itertools.count(1)


def envelope(
    provider: str,
    event_type: str,
    object_id: str | None,
    payload: dict[str, Any],
    *,
    event_id: str | None = None,
    at: int = 0,
    received_at: datetime | None = None,
) -> Envelope:
    """`at`: seconds after T0 the event happened (its order in the lifecycle)."""
    occurred = T0 + timedelta(seconds=at)
    return Envelope(
        provider=provider,
        event_id=event_id or f"{provider}-evt-{next(_ids)}",
        event_type=event_type,
        object_id=object_id,
        occurred_at=occurred,
        received_at=received_at or datetime.now(UTC),
        headers={},
        body=json.dumps(payload),
    )


def poison(event_id: str = "evt_poison") -> Envelope:
    """A Stripe event that fails on its own every attempt (an amount that is not a
    number): the consumer parks it."""
    return envelope(
        "stripe",
        "payment_intent.succeeded",
        "pi_poison",
        {"id": event_id, "data": {"object": {"id": "pi_poison", "amount": "lots"}}},
        event_id=event_id,
    )


STRIPE_INTENT_STATUS = {
    "payment_intent.created": "requires_payment_method",
    "payment_intent.processing": "processing",
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "requires_payment_method",
    "payment_intent.canceled": "canceled",
}


def stripe(
    event_type: str,
    *,
    intent: str = "pi_3QAbc2eZvKYlo2C1",
    amount: int = 2000,
    currency: str = "usd",
    order_id: str | None = "order-1001",
    refunded: int = 0,
    at: int = 0,
    event_id: str | None = None,
) -> Envelope:
    metadata = {"order_id": order_id} if order_id else {}
    obj: dict[str, Any]
    if event_type == "charge.refunded":
        obj = {
            "id": f"ch_{intent[3:]}",
            "object": "charge",
            "payment_intent": intent,
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": refunded,
            "currency": currency,
            "refunded": refunded >= amount,
            "status": "succeeded",
            "metadata": metadata,
        }
    elif event_type == "checkout.session.completed":
        obj = {
            "id": f"cs_test_{intent[3:]}",
            "object": "checkout.session",
            "payment_intent": intent,
            "payment_status": "paid",
            "amount_total": amount,
            "currency": currency,
            "client_reference_id": order_id,
            "metadata": {},
        }
    else:
        obj = {
            "id": intent,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": amount if event_type == "payment_intent.succeeded" else 0,
            "currency": currency,
            "status": STRIPE_INTENT_STATUS.get(event_type, "processing"),
            "metadata": metadata,
        }
    created = int((T0 + timedelta(seconds=at)).timestamp())
    identifier = event_id or f"evt_{next(_ids):010d}"
    payload = {
        "id": identifier,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "type": event_type,
        "livemode": False,
        "data": {"object": obj},
    }
    return envelope("stripe", event_type, obj["id"], payload, event_id=identifier, at=at)


def square_payment(
    status: str,
    *,
    payment: str = "KkAkhdMsgzn59SM8A89WgKwekxLZY",
    amount: int = 1500,
    currency: str = "USD",
    order_id: str | None = "order-2001",
    refunded: int = 0,
    at: int = 0,
    created: bool = False,
) -> Envelope:
    body: dict[str, Any] = {
        "id": payment,
        "status": status,
        "amount_money": {"amount": amount, "currency": currency},
        "total_money": {"amount": amount, "currency": currency},
        "source_type": "CARD",
        "location_id": "L88917AVBK2S5",
        "order_id": "Uxv9kdVWRvD8pe7NUu6wiAdK4DBZY",
        "updated_at": (T0 + timedelta(seconds=at)).isoformat(),
    }
    if order_id:
        body["reference_id"] = order_id
    if refunded:
        body["refunded_money"] = {"amount": refunded, "currency": currency}
    event_type = "payment.created" if created else "payment.updated"
    event_id = f"sq-{next(_ids)}"
    payload = {
        "merchant_id": "6SSW7HV8K2ST5",
        "type": event_type,
        "event_id": event_id,
        "created_at": (T0 + timedelta(seconds=at)).isoformat(),
        "data": {"type": "payment", "id": payment, "object": {"payment": body}},
    }
    return envelope("square", event_type, payment, payload, event_id=event_id, at=at)


def square_refund(
    status: str,
    *,
    refund: str = "KkAkhdMsgzn59SM8A89WgKwekxLZY_refund1",
    payment: str = "KkAkhdMsgzn59SM8A89WgKwekxLZY",
    amount: int = 500,
    currency: str = "USD",
    at: int = 0,
    created: bool = False,
) -> Envelope:
    event_type = "refund.created" if created else "refund.updated"
    event_id = f"sq-{next(_ids)}"
    payload = {
        "merchant_id": "6SSW7HV8K2ST5",
        "type": event_type,
        "event_id": event_id,
        "created_at": (T0 + timedelta(seconds=at)).isoformat(),
        "data": {
            "type": "refund",
            "id": refund,
            "object": {
                "refund": {
                    "id": refund,
                    "payment_id": payment,
                    "status": status,
                    "amount_money": {"amount": amount, "currency": currency},
                }
            },
        },
    }
    return envelope("square", event_type, refund, payload, event_id=event_id, at=at)


def shopify_order(
    topic: str,
    *,
    order: int = 450789469,
    total: str = "598.94",
    currency: str = "USD",
    financial_status: str = "paid",
    at: int = 0,
) -> Envelope:
    payload = {
        "id": order,
        "name": "#1001",
        "currency": currency,
        "total_price": total,
        "financial_status": financial_status,
        "cancelled_at": (T0 + timedelta(seconds=at)).isoformat()
        if topic == "orders/cancelled"
        else None,
        "created_at": T0.isoformat(),
    }
    return envelope("shopify", topic, str(order), payload, at=at)


def shopify_refund(
    *, refund: int = 509562969, order: int = 450789469, amount: str = "41.94", at: int = 0
) -> Envelope:
    payload = {
        "id": refund,
        "order_id": order,
        "created_at": (T0 + timedelta(seconds=at)).isoformat(),
        "transactions": [
            {
                "id": 179259969,
                "kind": "refund",
                "status": "success",
                "amount": amount,
                "currency": "USD",
            }
        ],
    }
    return envelope("shopify", "refunds/create", str(refund), payload, at=at)


def mercadopago(payment: str = "1320470583", *, at: int = 0) -> Envelope:
    payload = {
        "action": "payment.updated",
        "api_version": "v1",
        "data": {"id": payment},
        "date_created": (T0 + timedelta(seconds=at)).isoformat(),
        "id": next(_ids) + 10_000_000,
        "live_mode": False,
        "type": "payment",
        "user_id": 44444,
    }
    return envelope("mercadopago", "payment", payment, payload, event_id=str(payload["id"]), at=at)
