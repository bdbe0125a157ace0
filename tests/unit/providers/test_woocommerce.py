"""WooCommerce signs the body only: one validly signed delivery, then exactly one thing changed.

`X-WC-Webhook-Signature` is the base64 HMAC-SHA256 of the raw body. Every other
`X-WC-Webhook-*` header is unsigned: the topic labels the event, and the ledger
identity is `order:{id}:{date_modified_gmt}:{status}:{number of refunds}`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hookline.errors import MalformedEvent, RejectReason
from hookline.providers.base import WebhookRequest
from hookline.providers.woocommerce import WooCommerce

from tests.support.signers import ProviderCase, with_headers

NOW = 1_760_000_000
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)
SECRETS = ("wc-test-webhook-secret-fake", "wc-previous-webhook-secret-fake")
MODIFIED = "2017-03-22T16:28:08"
CASE = ProviderCase(WooCommerce(), SECRETS)
verify, rejected, normalize = CASE.verify, CASE.rejected, CASE.normalize


def order() -> dict[str, Any]:
    """A REST v3 order as woocommerce.github.io/woocommerce-rest-api-docs documents it."""
    return {
        "id": 727,
        "parent_id": 0,
        "number": "727",
        "order_key": "wc_order_58d2d042d1d",
        "created_via": "rest-api",
        "status": "processing",
        "currency": "USD",
        "date_created": "2017-03-22T16:28:02",
        "date_created_gmt": "2017-03-22T19:28:02",
        "date_modified": "2017-03-22T16:28:08",
        "date_modified_gmt": MODIFIED,
        "total": "29.35",
        "payment_method": "bacs",
        "date_paid": "2017-03-22T16:28:08",
        "date_paid_gmt": "2017-03-22T19:28:08",
        "refunds": [],
    }


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(
    payload: Any = None,
    *,
    body: bytes | None = None,
    secret: str = SECRETS[0],
    topic: str = "order.updated",
) -> WebhookRequest:
    """A delivery as WC_Webhook::deliver makes it, signed independently of the code under test."""
    raw = body if body is not None else encode(order() if payload is None else payload)
    signature = base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest())
    resource, _, event = topic.partition(".")
    return WebhookRequest(
        body=raw,
        headers={
            "content-type": "application/json",
            "x-wc-webhook-source": "https://shop.example.com/",
            "x-wc-webhook-topic": topic,
            "x-wc-webhook-resource": resource,
            "x-wc-webhook-event": event,
            "x-wc-webhook-signature": signature.decode(),
            "x-wc-webhook-id": "17",
            "x-wc-webhook-delivery-id": "2c4b0e2d4e8b0f2fb3fa01b1c4b5d2a9",
        },
    )


# ---------------------------------------------------------------- verification


def test_the_genuine_delivery_verifies() -> None:
    verify(signed())


def test_a_body_changed_by_one_byte_is_refused() -> None:
    body = bytearray(signed().body)
    body[len(body) // 2] ^= 0x01
    assert rejected(WebhookRequest(body=bytes(body), headers=signed().headers)) is (
        RejectReason.MISMATCH
    )


def test_another_secret_is_refused() -> None:
    assert rejected(signed(secret="attacker-secret-woocommerce")) is RejectReason.MISMATCH


@pytest.mark.parametrize("secret", SECRETS, ids=["current", "previous"])
def test_either_rotated_secret_is_accepted(secret: str) -> None:
    verify(signed(secret=secret), SECRETS)


def test_a_secret_removed_after_rotation_is_refused() -> None:
    assert rejected(signed(secret=SECRETS[1])) is RejectReason.MISMATCH


def test_a_missing_signature_is_refused() -> None:
    request = with_headers(signed(), x_wc_webhook_signature=None)
    assert rejected(request) is RejectReason.MISSING_HEADER


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_signature_is_refused(empty: str) -> None:
    request = with_headers(signed(), x_wc_webhook_signature=empty)
    assert rejected(request) is RejectReason.MISSING_HEADER


def test_a_hex_signature_is_refused() -> None:
    raw = signed().body
    digest = hmac.new(SECRETS[0].encode(), raw, hashlib.sha256).hexdigest()
    assert rejected(with_headers(signed(), x_wc_webhook_signature=digest)) is (
        RejectReason.MISMATCH
    )


def test_a_duplicated_signature_header_is_refused() -> None:
    value = signed().headers["x-wc-webhook-signature"]
    request = with_headers(signed(), x_wc_webhook_signature=f"{value},{value}")
    assert rejected(request) is RejectReason.MISMATCH


def test_the_save_time_ping_is_refused_like_any_unsigned_request() -> None:
    # WC_Webhook::deliver_ping posts `webhook_id=N` with no signature header.
    ping = WebhookRequest(
        body=b"webhook_id=17", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert rejected(ping) is RejectReason.MISSING_HEADER


# ---------------------------------------------------------------- normalization


def test_an_order_is_named_by_signed_facts() -> None:
    envelope = normalize(signed())
    assert envelope.provider == "woocommerce"
    assert envelope.event_id == f"order:727:{MODIFIED}:processing:0"
    assert envelope.event_type == "order.updated"
    assert envelope.object_id == "727"
    assert envelope.occurred_at == datetime(2017, 3, 22, 16, 28, 8, tzinfo=UTC)
    assert envelope.body == signed().body.decode()
    assert envelope.headers["x-wc-webhook-delivery-id"] == "2c4b0e2d4e8b0f2fb3fa01b1c4b5d2a9"
    assert "x-wc-webhook-signature" not in envelope.headers


def test_a_re_sent_delivery_with_a_fresh_delivery_id_and_topic_is_the_same_event() -> None:
    replayed = with_headers(signed(), x_wc_webhook_delivery_id="fresh", x_wc_webhook_topic="x.y")
    assert normalize(replayed).event_id == normalize(signed()).event_id


def test_the_topic_only_labels() -> None:
    assert normalize(signed(topic="order.created")).event_type == "order.created"


def test_two_saves_in_one_second_with_another_status_are_two_events() -> None:
    pending = order() | {"status": "pending"}
    assert normalize(signed(pending)).event_id != normalize(signed()).event_id


def test_a_refund_in_the_same_second_is_another_event() -> None:
    refunded = order() | {"refunds": [{"id": 730, "reason": "", "total": "-10.00"}]}
    assert normalize(signed(refunded)).event_id == f"order:727:{MODIFIED}:processing:1"


def test_a_body_that_is_not_an_order_never_shares_an_orders_identity() -> None:
    product = {"id": 727, "status": "processing", "date_modified_gmt": MODIFIED, "price": "9"}
    assert normalize(signed(product)).event_id == f"resource:727:{MODIFIED}:processing:0"


# ---------------------------------------------------------------- hostile input, signed


@pytest.mark.parametrize(
    "body", [b"", b"null", b"[1,2]", b"{", b'"text"', b"\xff\xfe{}", b"webhook_id=17"]
)
def test_a_signed_body_that_is_not_a_json_object_is_malformed(body: bytes) -> None:
    request = signed(body=body)
    verify(request)
    with pytest.raises(MalformedEvent):
        normalize(request)


@pytest.mark.parametrize("name", ["id", "status", "date_modified_gmt"])
def test_a_body_without_what_names_it_is_malformed(name: str) -> None:
    payload = order()
    del payload[name]
    with pytest.raises(MalformedEvent):
        normalize(signed(payload))


def test_a_deleted_order_body_is_malformed() -> None:
    # order.deleted sends only {"id": N}: nothing signed says when, so no identity.
    with pytest.raises(MalformedEvent):
        normalize(signed({"id": 727}, topic="order.deleted"))


def test_a_missing_topic_is_malformed() -> None:
    with pytest.raises(MalformedEvent):
        normalize(with_headers(signed(), x_wc_webhook_topic=None))


@pytest.mark.parametrize("topic", ["order updated", "order:updated", "x" * 200, "order"])
def test_a_topic_that_is_no_topic_is_malformed(topic: str) -> None:
    with pytest.raises(MalformedEvent):
        normalize(with_headers(signed(), x_wc_webhook_topic=topic))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", "727"),
        ("id", 0),
        ("id", -1),
        ("id", 727.0),
        ("id", True),
        ("id", 2**64),
        ("status", "proc:essing"),
        ("status", "processing\u0000"),
        ("status", "PROCESSING"),
        ("status", 1),
        ("status", "x" * 65),
        ("date_modified_gmt", "yesterday"),
        ("date_modified_gmt", 1490200088),
        ("date_modified_gmt", "2017-03-22T16:28:08\u0000"),
        ("date_modified_gmt", "0001-01-01T00:30:00+01:00"),
        ("refunds", {"id": 1}),
        ("refunds", "-10.00"),
    ],
    ids=str,
)
def test_hostile_values_that_name_the_event_are_malformed(name: str, value: Any) -> None:
    payload = copy.deepcopy(order())
    payload[name] = value
    request = signed(payload)
    verify(request)
    with pytest.raises(MalformedEvent):
        normalize(request)
