"""A sender hookline has no module for, configured instead of coded: Paystack.

The receiver function reads HOOKLINE_GENERIC_PROVIDERS (the GenericProviders
template parameter) and serves /webhooks/paystack; the consumer applies its
events through a team's handler module (docs/examples/python/paystack_handlers.py,
named in HOOKLINE_HANDLER_MODULES), into the same payments and orders tables.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hookline.consumer.build import consumer
from hookline.database import Connection
from hookline.handlers import registry
from hookline.providers import WebhookRequest
from hookline.receiver.api import intake

from tests.integration.test_receiver import invoke
from tests.support.apigw import webhook_event
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order
from tests.support.stack import Stack, default_secret_document

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "python"
SECRET = "sk_test_paystack_fake_current"
PAYSTACK = {
    "paystack": {
        "signature_header": "x-paystack-signature",
        "algorithm": "sha512",
        "event_id": ["event", "data.id"],
        "event_type": "event",
        "object_id": "data.reference",
        "occurred_at": "data.paid_at",
    }
}


def charge(order_id: str, amount: int, *, charge_id: int = 302961) -> bytes:
    return json.dumps(
        {
            "event": "charge.success",
            "data": {
                "id": charge_id,
                "status": "success",
                "reference": f"ref-{charge_id}",
                "amount": amount,
                "currency": "NGN",
                "paid_at": "2026-11-24T09:10:19.000Z",
                "metadata": {"order_id": order_id},
            },
        }
    ).encode()


def post(body: bytes, secret: str = SECRET) -> tuple[int, dict[str, Any]]:
    # As Paystack signs: hex HMAC-SHA512 of the raw body with the secret key.
    signature = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    request = WebhookRequest(body=body, headers={"x-paystack-signature": signature})
    status, answer, _ = invoke(webhook_event("paystack", request))
    return status, answer


@pytest.fixture
def paystack(
    stack: Stack, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    monkeypatch.setenv("HOOKLINE_GENERIC_PROVIDERS", json.dumps(PAYSTACK))
    document = {**default_secret_document(), "paystack": [SECRET]}
    stack.put_secret({**document, "mercadopago_access_token": "unused"})
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("HOOKLINE_HANDLER_MODULES", "paystack_handlers")
    intake.cache_clear()
    consumer.cache_clear()
    yield pipeline
    registry._handlers.pop(("paystack", "charge.success"), None)
    sys.modules.pop("paystack_handlers", None)
    intake.cache_clear()
    consumer.cache_clear()


def test_a_configured_sender_is_verified_queued_and_applied_by_a_team_handler(
    paystack: Pipeline, db: Connection
) -> None:
    insert_order(db, "order-1001", 10000, "NGN")
    status, answer = post(charge("order-1001", 10000))
    assert (status, answer) == (200, {"received": True, "event_id": "charge.success:302961"})
    # Paystack's retry of the same event is the same event.
    assert post(charge("order-1001", 10000))[0] == 200
    paystack.drain()
    row = db.execute(
        "SELECT status, object_id FROM webhook_events WHERE provider = 'paystack'"
    ).fetchall()
    assert row == [{"status": "applied", "object_id": "ref-302961"}]
    order = db.execute("SELECT status, paid_amount FROM orders WHERE id = 'order-1001'").fetchone()
    assert order == {"status": "paid", "paid_amount": 10000}


def test_a_forged_or_tampered_delivery_is_refused_and_nothing_is_queued(
    paystack: Pipeline, stack: Stack
) -> None:
    assert post(charge("order-1001", 10000), secret="sk_test_attacker")[0] == 401
    body = charge("order-1001", 10000)
    signature = hmac.new(SECRET.encode(), body, hashlib.sha512).hexdigest()
    tampered = WebhookRequest(
        body=body.replace(b"10000", b"1"), headers={"x-paystack-signature": signature}
    )
    assert invoke(webhook_event("paystack", tampered))[0] == 401
    assert stack.messages() == []


def test_an_unconfigured_name_is_unknown_and_a_bad_configuration_answers_503(
    paystack: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = WebhookRequest(body=b"{}", headers={"x-paystack-signature": "00"})
    assert invoke(webhook_event("flutterwave", request))[0] == 404
    monkeypatch.setenv("HOOKLINE_GENERIC_PROVIDERS", '{"paystack": {"algorithm": "md5"}}')
    intake.cache_clear()
    assert invoke(webhook_event("paystack", request))[0] == 503
