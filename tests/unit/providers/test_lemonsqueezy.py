"""Lemon Squeezy signs the body only: one validly signed delivery, then exactly one thing changed.

`X-Signature` is the hex HMAC-SHA256 of the raw body. `X-Event-Name` is an
unsigned copy of `meta.event_name`; the body has no event id, so the ledger
identity is `{meta.event_name}:{data.id}:{data.attributes.updated_at}`.
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
from hookline.providers.lemonsqueezy import LemonSqueezy

from tests.support.signers import ProviderCase, with_headers

NOW = 1_760_000_000
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)
SECRETS = ("ls-test-signing-secret-fake", "ls-previous-signing-secret-fake")
UPDATED_AT = "2021-08-11T13:47:29.000000Z"
CASE = ProviderCase(LemonSqueezy(), SECRETS)
verify, rejected, normalize = CASE.verify, CASE.rejected, CASE.normalize


def order_created() -> dict[str, Any]:
    """An order_created event as docs.lemonsqueezy.com/api/webhooks documents it."""
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
                "status_formatted": "Paid",
                "refunded": False,
                "refunded_at": None,
                "created_at": "2021-08-11T13:47:28.000000Z",
                "updated_at": UPDATED_AT,
                "test_mode": True,
            },
            "links": {"self": "https://api.lemonsqueezy.com/v1/orders/1"},
        },
    }


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(
    payload: Any = None, *, body: bytes | None = None, secret: str = SECRETS[0]
) -> WebhookRequest:
    """A delivery as Lemon Squeezy makes it, signed independently of the code under test."""
    raw = body if body is not None else encode(order_created() if payload is None else payload)
    return WebhookRequest(
        body=raw,
        headers={
            "content-type": "application/json",
            "x-event-name": "order_created",
            "x-signature": hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
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
    assert rejected(signed(secret="attacker-secret-lemonsqueezy")) is RejectReason.MISMATCH


@pytest.mark.parametrize("secret", SECRETS, ids=["current", "previous"])
def test_either_rotated_secret_is_accepted(secret: str) -> None:
    verify(signed(secret=secret), SECRETS)


def test_a_secret_removed_after_rotation_is_refused() -> None:
    assert rejected(signed(secret=SECRETS[1])) is RejectReason.MISMATCH


def test_a_missing_signature_is_refused() -> None:
    assert rejected(with_headers(signed(), x_signature=None)) is RejectReason.MISSING_HEADER


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_signature_is_refused(empty: str) -> None:
    assert rejected(with_headers(signed(), x_signature=empty)) is RejectReason.MISSING_HEADER


def test_a_base64_signature_is_refused() -> None:
    raw = signed().body
    digest = base64.b64encode(hmac.new(SECRETS[0].encode(), raw, hashlib.sha256).digest())
    assert rejected(with_headers(signed(), x_signature=digest.decode())) is RejectReason.MISMATCH


def test_a_duplicated_signature_header_is_refused() -> None:
    value = signed().headers["x-signature"]
    assert rejected(with_headers(signed(), x_signature=f"{value},{value}")) is (
        RejectReason.MISMATCH
    )


def test_a_signature_with_a_control_character_is_refused_before_the_hmac() -> None:
    assert rejected(with_headers(signed(), x_signature="ab\ncd")) is RejectReason.MALFORMED_HEADER


# ---------------------------------------------------------------- normalization


def test_an_order_is_named_by_signed_facts() -> None:
    envelope = normalize(signed())
    assert envelope.provider == "lemonsqueezy"
    assert envelope.event_id == f"order_created:1:{UPDATED_AT}"
    assert envelope.event_type == "order_created"
    assert envelope.object_id == "1"
    assert envelope.occurred_at == datetime(2021, 8, 11, 13, 47, 29, tzinfo=UTC)
    assert envelope.body == signed().body.decode()


def test_the_unsigned_event_name_header_neither_routes_nor_names() -> None:
    relabelled = normalize(with_headers(signed(), x_event_name="order_refunded"))
    assert relabelled.event_type == "order_created"
    assert relabelled.event_id == normalize(signed()).event_id


def test_a_refund_of_the_same_order_is_another_event() -> None:
    payload = order_created()
    payload["meta"]["event_name"] = "order_refunded"
    payload["data"]["attributes"] |= {
        "status": "refunded",
        "refunded": True,
        "refunded_amount": 1199,
        "updated_at": "2021-08-12T09:00:00.000000Z",
    }
    envelope = normalize(signed(payload))
    assert envelope.event_id == "order_refunded:1:2021-08-12T09:00:00.000000Z"
    assert envelope.object_id == "1"
    assert envelope.occurred_at == datetime(2021, 8, 12, 9, tzinfo=UTC)


def test_without_updated_at_the_creation_time_names_it() -> None:
    payload = order_created()
    del payload["data"]["attributes"]["updated_at"]
    envelope = normalize(signed(payload))
    assert envelope.event_id == "order_created:1:2021-08-11T13:47:28.000000Z"
    assert envelope.occurred_at == datetime(2021, 8, 11, 13, 47, 28, tzinfo=UTC)


# ---------------------------------------------------------------- hostile input, signed


@pytest.mark.parametrize("body", [b"", b"null", b"[1,2]", b"{", b'"text"', b"\xff\xfe{}"])
def test_a_signed_body_that_is_not_a_json_object_is_malformed(body: bytes) -> None:
    request = signed(body=body)
    verify(request)
    with pytest.raises(MalformedEvent):
        normalize(request)


def changed(path: tuple[str, ...], value: Any, *, delete: bool = False) -> dict[str, Any]:
    payload = copy.deepcopy(order_created())
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return payload


ATTRIBUTES = ("data", "attributes")


@pytest.mark.parametrize(
    "path",
    [
        ("meta",),
        ("meta", "event_name"),
        ("data",),
        ("data", "id"),
        ATTRIBUTES,
    ],
    ids=lambda p: ".".join(p),
)
def test_a_body_without_what_names_it_is_malformed(path: tuple[str, ...]) -> None:
    with pytest.raises(MalformedEvent):
        normalize(signed(changed(path, None, delete=True)))


def test_a_body_without_any_time_is_malformed() -> None:
    payload = order_created()
    del payload["data"]["attributes"]["updated_at"]
    del payload["data"]["attributes"]["created_at"]
    with pytest.raises(MalformedEvent):
        normalize(signed(payload))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("meta", "event_name"), 7),
        (("meta", "event_name"), "order:created"),
        (("meta", "event_name"), "order_created\u0000"),
        (("meta", "event_name"), "x" * 65),
        (("meta",), "order_created"),
        (("data", "id"), "1:2"),
        (("data", "id"), "1\u0000"),
        (("data", "id"), "\ud800"),
        (("data", "id"), True),
        (("data", "id"), 1.5),
        (("data", "id"), "9" * 65),
        ((*ATTRIBUTES, "updated_at"), "yesterday"),
        ((*ATTRIBUTES, "updated_at"), 1628689648),
        ((*ATTRIBUTES, "updated_at"), "0001-01-01T00:30:00+01:00"),
        ((*ATTRIBUTES, "updated_at"), "2021-08-11T13:47:29\u0000Z"),
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


def test_a_numeric_data_id_is_read_as_text() -> None:
    # JSON:API ids are strings; a number is the same id, never a crash.
    assert normalize(signed(changed(("data", "id"), 1))).event_id == f"order_created:1:{UPDATED_AT}"
