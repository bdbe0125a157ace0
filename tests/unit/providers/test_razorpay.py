"""Razorpay signs the body only: one validly signed delivery, then exactly one thing changed.

`X-Razorpay-Signature` is the hex HMAC-SHA256 of the raw body. The
`x-razorpay-event-id` header is unsigned, so the ledger identity is built from
the body: `{event}:{entity id}:{created_at}`.
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
from hookline.providers.razorpay import Razorpay

from tests.support.signers import ProviderCase, with_headers

NOW = 1_760_000_000
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)
SECRETS = ("rzp-test-webhook-secret-fake", "rzp-previous-webhook-secret-fake")
CREATED_AT = 1_759_999_990
CASE = ProviderCase(Razorpay(), SECRETS)
verify, rejected, normalize = CASE.verify, CASE.rejected, CASE.normalize


def captured() -> dict[str, Any]:
    """A payment.captured event as Razorpay documents it (razorpay.com/docs/webhooks/payments)."""
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
                    "created_at": CREATED_AT - 5,
                }
            }
        },
        "created_at": CREATED_AT,
    }


def refund_processed() -> dict[str, Any]:
    payment = captured()["payload"]["payment"]
    payment["entity"] |= {"status": "refunded", "amount_refunded": 50000}
    return {
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": "refund.processed",
        "contains": ["refund", "payment"],
        "payload": {
            "refund": {
                "entity": {
                    "id": "rfnd_FP8QHiV938haTz",
                    "entity": "refund",
                    "amount": 50000,
                    "currency": "INR",
                    "payment_id": "pay_DESlfW9H8K9uqM",
                    "status": "processed",
                    "created_at": CREATED_AT + 60,
                }
            },
            "payment": payment,
        },
        "created_at": CREATED_AT + 60,
    }


def order_paid() -> dict[str, Any]:
    event = captured()
    event["event"] = "order.paid"
    event["contains"] = ["payment", "order"]
    event["payload"]["order"] = {
        "entity": {
            "id": "order_DESlLckIVRkHWj",
            "entity": "order",
            "amount": 50000,
            "amount_paid": 50000,
            "amount_due": 0,
            "currency": "INR",
            "receipt": "order-1001",
            "status": "paid",
            "attempts": 1,
            "created_at": CREATED_AT - 60,
        }
    }
    return event


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(
    payload: Any = None, *, body: bytes | None = None, secret: str = SECRETS[0], **headers: str
) -> WebhookRequest:
    """A delivery as Razorpay makes it, signed independently of the code under test."""
    raw = body if body is not None else encode(captured() if payload is None else payload)
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return WebhookRequest(
        body=raw,
        headers={
            "content-type": "application/json",
            "x-razorpay-signature": signature,
            "x-razorpay-event-id": "HBV2dW9ZLlDg5H",
            **{name.replace("_", "-"): value for name, value in headers.items()},
        },
    )


# ---------------------------------------------------------------- verification


def test_the_genuine_delivery_verifies() -> None:
    verify(signed())


def test_a_body_changed_by_one_byte_is_refused() -> None:
    body = bytearray(signed().body)
    body[len(body) // 2] ^= 0x01
    request = WebhookRequest(body=bytes(body), headers=signed().headers)
    assert rejected(request) is RejectReason.MISMATCH


def test_a_re_serialized_body_is_refused() -> None:
    # Razorpay signs the raw bytes: the same JSON with other spacing is another message.
    request = signed()
    spaced = WebhookRequest(body=json.dumps(captured()).encode(), headers=request.headers)
    assert rejected(spaced) is RejectReason.MISMATCH


def test_another_secret_is_refused() -> None:
    assert rejected(signed(secret="attacker-secret-razorpay")) is RejectReason.MISMATCH


@pytest.mark.parametrize("secret", SECRETS, ids=["current", "previous"])
def test_either_rotated_secret_is_accepted(secret: str) -> None:
    verify(signed(secret=secret), SECRETS)


def test_a_secret_removed_after_rotation_is_refused() -> None:
    assert rejected(signed(secret=SECRETS[1])) is RejectReason.MISMATCH


def test_a_missing_signature_is_refused() -> None:
    request = with_headers(signed(), x_razorpay_signature=None)
    assert rejected(request) is RejectReason.MISSING_HEADER


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_signature_is_refused(empty: str) -> None:
    assert rejected(with_headers(signed(), x_razorpay_signature=empty)) is (
        RejectReason.MISSING_HEADER
    )


def test_an_upper_case_signature_is_refused_as_the_sdk_refuses_it() -> None:
    request = signed()
    upper = request.headers["x-razorpay-signature"].upper()
    assert rejected(with_headers(request, x_razorpay_signature=upper)) is RejectReason.MISMATCH


def test_a_base64_signature_is_refused() -> None:
    # Razorpay sends hex; the same MAC in base64 (Shopify's encoding) is not its signature.
    raw = signed().body
    digest = base64.b64encode(hmac.new(SECRETS[0].encode(), raw, hashlib.sha256).digest())
    request = with_headers(signed(), x_razorpay_signature=digest.decode())
    assert rejected(request) is RejectReason.MISMATCH


def test_a_duplicated_signature_header_is_refused() -> None:
    request = signed()
    value = request.headers["x-razorpay-signature"]
    assert rejected(with_headers(request, x_razorpay_signature=f"{value},{value}")) is (
        RejectReason.MISMATCH
    )


def test_a_signature_with_a_control_character_is_refused_before_the_hmac() -> None:
    request = with_headers(signed(), x_razorpay_signature="ab\r\ncd")
    assert rejected(request) is RejectReason.MALFORMED_HEADER


def test_an_old_delivery_still_verifies_razorpay_signs_no_time() -> None:
    # No timestamp is signed: a replay is caught by its identity (a duplicate), not a window.
    CASE.provider.verify(signed(), SECRETS[:1], now=NOW + 86_400 * 30, tolerance=300)


# ---------------------------------------------------------------- normalization


def test_a_captured_payment_is_named_by_signed_facts() -> None:
    envelope = normalize(signed())
    assert envelope.provider == "razorpay"
    assert envelope.event_id == f"payment.captured:pay_DESlfW9H8K9uqM:{CREATED_AT}"
    assert envelope.event_type == "payment.captured"
    assert envelope.object_id == "pay_DESlfW9H8K9uqM"
    assert envelope.occurred_at == datetime.fromtimestamp(CREATED_AT, UTC)
    assert envelope.received_at == RECEIVED_AT
    assert envelope.body == signed().body.decode()


def test_the_unsigned_event_id_header_never_names_the_event() -> None:
    first = normalize(signed())
    replayed = normalize(with_headers(signed(), x_razorpay_event_id="forged-fresh-id"))
    absent = normalize(with_headers(signed(), x_razorpay_event_id=None))
    assert first.event_id == replayed.event_id == absent.event_id
    # Kept as a label for operators only.
    assert replayed.headers == {"x-razorpay-event-id": "forged-fresh-id"}


def test_a_refund_is_named_by_the_refund_and_ordered_with_its_payment() -> None:
    envelope = normalize(signed(refund_processed()))
    assert envelope.event_id == f"refund.processed:rfnd_FP8QHiV938haTz:{CREATED_AT + 60}"
    assert envelope.event_type == "refund.processed"
    assert envelope.object_id == "pay_DESlfW9H8K9uqM"
    assert envelope.occurred_at == datetime.fromtimestamp(CREATED_AT + 60, UTC)


def test_a_refund_without_its_payment_entity_is_ordered_by_its_payment_id() -> None:
    payload = refund_processed()
    del payload["payload"]["payment"]
    payload["contains"] = ["refund"]
    assert normalize(signed(payload)).object_id == "pay_DESlfW9H8K9uqM"


def test_a_paid_order_is_named_by_the_order_and_ordered_with_its_payment() -> None:
    envelope = normalize(signed(order_paid()))
    assert envelope.event_id == f"order.paid:order_DESlLckIVRkHWj:{CREATED_AT}"
    assert envelope.object_id == "pay_DESlfW9H8K9uqM"


def test_two_events_about_one_payment_are_two_events() -> None:
    failed = captured()
    failed["event"] = "payment.failed"
    assert normalize(signed(failed)).event_id != normalize(signed()).event_id


def test_an_event_about_another_entity_falls_back_to_what_it_contains() -> None:
    payload = captured()
    payload["event"] = "payment.dispute.created"
    payload["contains"] = ["payment", "dispute"]
    payload["payload"]["dispute"] = {"entity": {"id": "disp_XXXXXXXXXXXXXX"}}
    envelope = normalize(signed(payload))
    assert envelope.event_id == f"payment.dispute.created:pay_DESlfW9H8K9uqM:{CREATED_AT}"


# ---------------------------------------------------------------- hostile input, signed


@pytest.mark.parametrize("body", [b"", b"null", b"[1,2]", b"{", b'"text"', b"\xff\xfe{}"])
def test_a_signed_body_that_is_not_a_json_object_is_malformed(body: bytes) -> None:
    request = signed(body=body)
    verify(request)
    with pytest.raises(MalformedEvent):
        normalize(request)


def without(path: tuple[str, ...]) -> dict[str, Any]:
    payload = captured()
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return payload


@pytest.mark.parametrize(
    "path",
    [("event",), ("created_at",), ("payload",), ("payload", "payment", "entity", "id")],
    ids=lambda p: ".".join(p),
)
def test_a_body_without_what_names_it_is_malformed(path: tuple[str, ...]) -> None:
    with pytest.raises(MalformedEvent):
        normalize(signed(without(path)))


def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    payload = copy.deepcopy(captured())
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return payload


ENTITY_ID = ("payload", "payment", "entity", "id")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("created_at",), "1759999990"),
        (("created_at",), 1759999990.5),
        (("created_at",), True),
        (("created_at",), -62_135_596_801),
        (("created_at",), 10**30),
        (("event",), 42),
        (("event",), "payment:captured"),
        (("event",), "payment.captured\u0000"),
        (("event",), "captured"),
        (("event",), "payment." + "x" * 200),
        (ENTITY_ID, 12345),
        (ENTITY_ID, "pay_\u0000evil"),
        (ENTITY_ID, "pay_a:b"),
        (ENTITY_ID, "pay_\ud800"),
        (ENTITY_ID, "p" * 65),
        (ENTITY_ID, ["pay_1"]),
        (("payload", "payment", "entity"), "pay_1"),
    ],
    ids=str,
)
def test_hostile_values_that_name_the_event_are_malformed(
    path: tuple[str, ...], value: Any
) -> None:
    request = signed(changed(path, value))
    verify(request)
    with pytest.raises(MalformedEvent):
        normalize(request)


def test_a_hostile_refund_payment_id_is_malformed() -> None:
    payload = refund_processed()
    del payload["payload"]["payment"]
    payload["payload"]["refund"]["entity"]["payment_id"] = "pay_\u0000"
    with pytest.raises(MalformedEvent):
        normalize(signed(payload))


def test_deeply_nested_notes_are_malformed_not_a_crash() -> None:
    body = signed().body.replace(
        b'"notes":{', b'"deep":' + b"[" * 5000 + b"]" * 5000 + b',"notes":{'
    )
    with pytest.raises(MalformedEvent):
        normalize(signed(body=body))
