"""Paddle Billing: one validly signed request, then exactly one thing changed per test.

Signed here from Paddle's documentation (developer.paddle.com/webhooks/signature-verification:
HMAC-SHA256 hex of `{ts}:{raw body}` keyed with the destination's secret key),
independently of hookline.providers.paddle; tests/contract/test_paddle_sdk.py
checks the same against paddle-python-sdk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected
from hookline.providers.base import WebhookRequest
from hookline.providers.paddle import Paddle

NOW = 1_760_000_000
TOLERANCE = 300
SECRET = "pdl_ntfset_01hv8x2a_test_current_fake"
PREVIOUS = "pdl_ntfset_01hv8x1z_test_previous_fake"
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)
PADDLE = Paddle()


def event(event_type: str = "transaction.completed", **data: Any) -> dict[str, Any]:
    return {
        "event_id": "evt_01hv8x2a6qv0fq0ny6s3q2bnqe",
        "event_type": event_type,
        "occurred_at": "2025-10-09T08:53:20.123456Z",
        "notification_id": "ntf_01hv8x2afwgjvq2wa5xcddkhbt",
        "data": {"id": "txn_01hv8wptq8987qeep44cyrewp9", "status": "completed", **data},
    }


def signature(body: bytes, secret: str = SECRET, timestamp: int = NOW) -> str:
    return hmac.new(secret.encode(), f"{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def request(
    payload: dict[str, Any] | None = None, *, header: str | None = None, body: bytes | None = None
) -> WebhookRequest:
    raw = body if body is not None else json.dumps(payload or event()).encode()
    value = header if header is not None else f"ts={NOW};h1={signature(raw)}"
    return WebhookRequest(body=raw, headers={"paddle-signature": value})


def verify(req: WebhookRequest, secrets: tuple[str, ...] = (SECRET,), now: float = NOW) -> None:
    PADDLE.verify(req, secrets, now=now, tolerance=TOLERANCE)


def rejected(req: WebhookRequest, **kwargs: Any) -> RejectReason:
    with pytest.raises(SignatureRejected) as caught:
        verify(req, **kwargs)
    return caught.value.reason


def test_a_signed_delivery_verifies_and_normalizes() -> None:
    req = request()
    verify(req)
    envelope = PADDLE.normalize(req, received_at=RECEIVED_AT)
    assert envelope.provider == "paddle"
    assert envelope.event_id == "evt_01hv8x2a6qv0fq0ny6s3q2bnqe"
    assert envelope.event_type == "transaction.completed"
    assert envelope.object_id == "txn_01hv8wptq8987qeep44cyrewp9"
    assert envelope.occurred_at == datetime(2025, 10, 9, 8, 53, 20, 123456, UTC)
    assert envelope.body == req.body.decode()


def test_an_adjustment_is_ordered_with_its_transaction() -> None:
    payload = event("adjustment.created", id="adj_01hvgf2s84dr6reszzg29zb4x1")
    payload["data"]["transaction_id"] = "txn_01hv8wptq8987qeep44cyrewp9"
    envelope = PADDLE.normalize(request(payload), received_at=RECEIVED_AT)
    assert envelope.object_id == "txn_01hv8wptq8987qeep44cyrewp9"


def test_body_changed_by_one_byte_is_refused() -> None:
    req = request()
    tampered = bytearray(req.body)
    tampered[len(tampered) // 2] ^= 0x01
    assert rejected(replace(req, body=bytes(tampered))) is RejectReason.MISMATCH


def test_signed_timestamp_changed_is_refused() -> None:
    raw = json.dumps(event()).encode()
    assert rejected(request(body=raw, header=f"ts={NOW + 1};h1={signature(raw)}")) is (
        RejectReason.MISMATCH
    )


def test_wrong_secret_is_refused() -> None:
    raw = json.dumps(event()).encode()
    header = f"ts={NOW};h1={signature(raw, 'pdl_ntfset_attacker')}"
    assert rejected(request(body=raw, header=header)) is RejectReason.MISMATCH


@pytest.mark.parametrize("signing", [SECRET, PREVIOUS], ids=["current", "previous"])
def test_either_secret_of_a_rotation_is_accepted(signing: str) -> None:
    raw = json.dumps(event()).encode()
    verify(request(body=raw, header=f"ts={NOW};h1={signature(raw, signing)}"), (SECRET, PREVIOUS))


def test_any_h1_may_match_as_paddle_sends_several_while_rotating() -> None:
    raw = json.dumps(event()).encode()
    header = f"ts={NOW};h1={signature(raw, PREVIOUS)};h1={signature(raw)}"
    verify(request(body=raw, header=header))


def test_an_unknown_scheme_beside_h1_is_skipped() -> None:
    raw = json.dumps(event()).encode()
    verify(request(body=raw, header=f"ts={NOW};h2=abc;h1={signature(raw)}"))


@pytest.mark.parametrize("skew", [-TOLERANCE - 1, TOLERANCE + 1])
def test_timestamp_outside_the_tolerance_is_refused(skew: int) -> None:
    assert rejected(request(), now=NOW + skew) is RejectReason.TIMESTAMP_OUT_OF_TOLERANCE


@pytest.mark.parametrize("skew", [-TOLERANCE, TOLERANCE])
def test_timestamp_at_the_edge_of_the_tolerance_is_accepted(skew: int) -> None:
    verify(request(), now=NOW + skew)


def test_missing_header_is_refused() -> None:
    req = request()
    assert rejected(replace(req, headers={})) is RejectReason.MISSING_HEADER
    assert rejected(replace(req, headers={"paddle-signature": "  "})) is (
        RejectReason.MISSING_HEADER
    )


@pytest.mark.parametrize(
    "header",
    [
        "h1=00",  # no timestamp
        f"ts={NOW}",  # no signature
        f"ts={NOW};ts={NOW};h1=00",  # two timestamps: never guess which was signed
        "ts=abc;h1=00",
        f"ts={NOW};h1=",
        "garbage",
        f"ts={NOW},h1=00",  # Stripe's separator
    ],
)
def test_malformed_header_is_refused(header: str) -> None:
    assert rejected(request(header=header)) is RejectReason.MALFORMED_HEADER


def test_a_timestamp_of_absurd_length_is_refused_without_reading_it() -> None:
    raw = json.dumps(event()).encode()
    timestamp = "9" * 5000
    digest = hmac.new(SECRET.encode(), f"{timestamp}:".encode() + raw, hashlib.sha256).hexdigest()
    assert rejected(request(body=raw, header=f"ts={timestamp};h1={digest}")) is (
        RejectReason.TIMESTAMP_OUT_OF_TOLERANCE
    )


@pytest.mark.parametrize(("field", "value"), [("event_id", None), ("event_type", "")])
def test_a_signed_body_without_id_or_type_is_malformed(field: str, value: object) -> None:
    payload = event()
    payload[field] = value
    with pytest.raises(MalformedEvent, match=field):
        PADDLE.normalize(request(payload), received_at=RECEIVED_AT)


def test_a_signed_body_that_is_not_json_is_malformed() -> None:
    raw = b"not json"
    req = request(body=raw, header=f"ts={NOW};h1={signature(raw)}")
    verify(req)
    with pytest.raises(MalformedEvent):
        PADDLE.normalize(req, received_at=RECEIVED_AT)
