"""Realistic webhook bodies, modelled on each provider's documented examples."""

from __future__ import annotations

import json
from typing import Any

SQUARE_URL = "https://hooks.example.test/webhooks/square"


def stripe_event(
    event_id: str = "evt_1NG8Du2eZvKYlo2CUI79vXWy", created: int = 1_760_000_000
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "type": "payment_intent.succeeded",
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {
            "object": {
                "id": "pi_3NG8Dt2eZvKYlo2C0ABCDEFG",
                "object": "payment_intent",
                "amount": 2000,
                "amount_received": 2000,
                "currency": "usd",
                "status": "succeeded",
                "metadata": {"order_id": "order-1001"},
            }
        },
    }


def square_event(event_id: str = "6a8f5f28-54a1-4eb0-a98a-3111513fd4fc") -> dict[str, Any]:
    return {
        "merchant_id": "6SSW7HV8K2ST5",
        "type": "payment.updated",
        "event_id": event_id,
        "created_at": "2026-11-20T21:26:18.000Z",
        "data": {
            "type": "payment",
            "id": "KkAkhdMsgzn59SM8A89WgKwekxLZY",
            "object": {
                "payment": {
                    "id": "KkAkhdMsgzn59SM8A89WgKwekxLZY",
                    "amount_money": {"amount": 2000, "currency": "USD"},
                    "status": "COMPLETED",
                    "reference_id": "order-1001",
                    "version": 3,
                }
            },
        },
    }


def mercadopago_event(
    event_id: int = 112233445566, payment_id: str = "1234567890"
) -> dict[str, Any]:
    return {
        "id": event_id,
        "live_mode": False,
        "type": "payment",
        "date_created": "2026-11-20T13:01:08.000-03:00",
        "user_id": 987654321,
        "api_version": "v1",
        "action": "payment.updated",
        "data": {"id": payment_id},
    }


def shopify_order(order_id: int = 820982911946154508) -> dict[str, Any]:
    return {
        "id": order_id,
        "name": "#1001",
        "email": "jon@example.com",
        "financial_status": "paid",
        "currency": "USD",
        "total_price": "20.00",
        "created_at": "2026-11-20T16:15:47-04:00",
    }


def github_push() -> dict[str, Any]:
    return {
        "action": "opened",
        "number": 2,
        "pull_request": {"id": 279147437, "number": 2, "state": "open"},
        "repository": {"id": 186853002, "full_name": "octo-org/hello-world"},
        "sender": {"login": "octocat"},
    }


def svix_event(object_id: str = "user_29w83sxmDNGwOuEthce5gg56FcC") -> dict[str, Any]:
    return {
        "data": {"id": object_id, "object": "user", "first_name": "Example"},
        "object": "event",
        "type": "user.created",
        "timestamp": 1_760_000_000_123,
    }


def standard_event() -> dict[str, Any]:
    return {
        "type": "invoice.paid",
        "timestamp": "2026-11-20T20:26:10.344522Z",
        "data": {"id": "inv_1234", "amount": 4200, "currency": "eur"},
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
