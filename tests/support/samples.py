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


def paddle_event(event_id: str = "evt_01hv8x2a6qv0fq0ny6s3q2bnqe") -> dict[str, Any]:
    """A transaction.completed notification (developer.paddle.com/webhooks)."""
    return {
        "event_id": event_id,
        "event_type": "transaction.completed",
        "occurred_at": "2025-10-09T08:53:20.123456Z",
        "notification_id": "ntf_01hv8x2afwgjvq2wa5xcddkhbt",
        "data": {
            "id": "txn_01hv8wptq8987qeep44cyrewp9",
            "status": "completed",
            "currency_code": "USD",
            "custom_data": {"order_id": "order-1001"},
            "details": {
                "totals": {
                    "subtotal": "2000",
                    "tax": "0",
                    "discount": "0",
                    "total": "2000",
                    "grand_total": "2000",
                    "currency_code": "USD",
                }
            },
        },
    }


def adyen_notification() -> dict[str, Any]:
    """Adyen's documented AUTHORISATION example, unsigned (signers.sign adds hmacSignature)."""
    return {
        "live": "false",
        "notificationItems": [
            {
                "NotificationRequestItem": {
                    "additionalData": {"authCode": "058705", "cardSummary": "1111"},
                    "amount": {"currency": "EUR", "value": 1130},
                    "eventCode": "AUTHORISATION",
                    "eventDate": "2025-10-09T10:53:20+02:00",
                    "merchantAccountCode": "TestMerchant",
                    "merchantReference": "TestPayment-1407325143704",
                    "paymentMethod": "visa",
                    "pspReference": "7914073381342284",
                    "success": "true",
                }
            }
        ],
    }


# eSewa's success redirect (developer.esewa.com.np/pages/Epay), unsigned: total_amount
# is a bare number token as eSewa writes it, signed as written (`1000.0`).
ESEWA_DOCUMENT = (
    '{"transaction_code":"000AWEO","status":"COMPLETE","total_amount":1000.0,'
    '"transaction_uuid":"250610-162413","product_code":"EPAYTEST",'
    '"signed_field_names":"transaction_code,status,total_amount,transaction_uuid,'
    'product_code,signed_field_names"}'
)

# Khalti's documented success callback (docs.khalti.com, "Payment Success Callback").
KHALTI_CALLBACK = (
    "pidx=bZQLD9wRVWo4CdESSfuSsB&txnId=4H7AhoXDJWg5WjrcPT9ixW&amount=10000"
    "&total_amount=10000&status=Completed&mobile=98XXXXX904&tidx=4H7AhoXDJWg5WjrcPT9ixW"
    "&purchase_order_id=test12&purchase_order_name=test"
    "&transaction_id=4H7AhoXDJWg5WjrcPT9ixW"
)

# Mollie's whole webhook (docs.mollie.com/reference/webhooks).
MOLLIE_FORM = "id=tr_WDqYK6vllg"


def razorpay_captured(created_at: int = 1_759_999_990) -> dict[str, Any]:
    """A payment.captured event (razorpay.com/docs/webhooks/payments)."""
    return {
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": "payment.captured",
        "contains": ["payment"],
        "payload": {
            "payment": {
                "entity": {
                    "id": "pay_DESlfW9H8K9uqM",
                    "entity": "payment",
                    "amount": 50000,
                    "currency": "INR",
                    "status": "captured",
                    "order_id": "order_DESlLckIVRkHWj",
                    "amount_refunded": 0,
                    "refund_status": None,
                    "captured": True,
                    "method": "netbanking",
                    "notes": {"order_id": "order-1001"},
                    "created_at": created_at - 5,
                }
            }
        },
        "created_at": created_at,
    }


def lemonsqueezy_order(updated_at: str = "2021-08-11T13:47:29.000000Z") -> dict[str, Any]:
    """An order_created event (docs.lemonsqueezy.com/api/webhooks)."""
    return {
        "meta": {
            "test_mode": True,
            "event_name": "order_created",
            "custom_data": {"order_id": "order-1001"},
        },
        "data": {
            "type": "orders",
            "id": "1",
            "attributes": {
                "store_id": 1,
                "identifier": "636f855c-1fb9-4c07-b75c-3a10afef010a",
                "order_number": 1,
                "currency": "USD",
                "subtotal": 999,
                "tax": 200,
                "total": 1199,
                "refunded_amount": 0,
                "status": "paid",
                "refunded": False,
                "refunded_at": None,
                "created_at": "2021-08-11T13:47:28.000000Z",
                "updated_at": updated_at,
                "test_mode": True,
            },
        },
    }


def woocommerce_order(order_id: int = 727) -> dict[str, Any]:
    """A REST v3 order (woocommerce.github.io/woocommerce-rest-api-docs)."""
    return {
        "id": order_id,
        "parent_id": 0,
        "number": str(order_id),
        "order_key": "wc_order_58d2d042d1d",
        "created_via": "rest-api",
        "status": "processing",
        "currency": "USD",
        "date_created": "2017-03-22T16:28:02",
        "date_created_gmt": "2017-03-22T19:28:02",
        "date_modified": "2017-03-22T16:28:08",
        "date_modified_gmt": "2017-03-22T19:28:08",
        "total": "29.35",
        "payment_method": "bacs",
        "refunds": [],
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
