"""Mercado Pago signs data.id, x-request-id and ts, never the body: one validly signed
notification, then exactly one thing changed per test.

The event's identity, object and time come from the signed parts; the signed
timestamp must be within the tolerance; the manifest must read one way only.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected
from hookline.providers import WebhookRequest, build_registry

from tests.support import samples
from tests.support.signers import NOW, SECRETS

MERCADOPAGO = build_registry()["mercadopago"]
TOLERANCE = 300
DATA_ID = "1234567890"
REQUEST_ID = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)


def signed(
    *,
    data_id: str | None = DATA_ID,
    request_id: str | None = REQUEST_ID,
    ts: str = str(NOW),
    body: dict[str, Any] | None = None,
) -> WebhookRequest:
    """Signed as Mercado Pago documents it (written independently of hookline)."""
    manifest = "".join(
        [
            f"id:{data_id};" if data_id else "",
            f"request-id:{request_id};" if request_id else "",
            f"ts:{ts};",
        ]
    )
    digest = hmac.new(
        SECRETS["mercadopago"][0].encode(), manifest.encode(), hashlib.sha256
    ).hexdigest()
    return WebhookRequest(
        body=samples.encode(body if body is not None else samples.mercadopago_event()),
        headers={"x-signature": f"ts={ts},v1={digest}"}
        | ({"x-request-id": request_id} if request_id is not None else {}),
        query={"data.id": data_id, "type": "payment"} if data_id is not None else {},
    )


def verify(request: WebhookRequest, now: float = NOW) -> None:
    MERCADOPAGO.verify(request, (SECRETS["mercadopago"][0],), now=now, tolerance=TOLERANCE)


def rejected(request: WebhookRequest, now: float = NOW) -> RejectReason:
    with pytest.raises(SignatureRejected) as caught:
        verify(request, now)
    return caught.value.reason


def normalize(request: WebhookRequest) -> Any:
    return MERCADOPAGO.normalize(request, received_at=RECEIVED_AT)


# ---------------------------------------------------------------- identity


def test_the_identity_is_the_signed_data_id_and_request_id() -> None:
    request = signed()
    verify(request)
    envelope = normalize(request)
    assert envelope.event_id == f"{DATA_ID}:{REQUEST_ID}"
    assert envelope.object_id == DATA_ID
    assert envelope.occurred_at == RECEIVED_AT  # the signed ts, not the body's date_created


@pytest.mark.parametrize(
    "change",
    [
        {"id": 999999999},
        {"type": "merchant_order"},
        {"action": "payment.created"},
        {"date_created": "2001-01-01T00:00:00.000-03:00"},
        {"user_id": 1, "live_mode": True},
        {"data": {}},
    ],
    ids=["id", "type", "action", "date_created", "account", "no-body-data-id"],
)
def test_one_signature_with_another_body_is_the_same_event(change: dict[str, Any]) -> None:
    genuine = normalize(signed())
    other = signed(body=samples.mercadopago_event() | change)
    verify(other)
    envelope = normalize(other)
    assert (envelope.event_id, envelope.object_id, envelope.occurred_at) == (
        genuine.event_id,
        genuine.object_id,
        genuine.occurred_at,
    )


def test_without_a_request_id_the_signed_ts_names_the_event() -> None:
    request = signed(request_id=None)
    verify(request)
    assert normalize(request).event_id == f"{DATA_ID}:ts:{NOW}"


def test_another_request_id_is_another_event() -> None:
    request = signed(request_id="0d6e3c1a-3f5b-4d59-9a0e-5c2b8f1e7a44")
    verify(request)
    assert normalize(request).event_id == f"{DATA_ID}:0d6e3c1a-3f5b-4d59-9a0e-5c2b8f1e7a44"


def test_without_a_signed_data_id_there_is_no_identity() -> None:
    # The SDK verifies a manifest without an id; hookline cannot name the event: 400.
    request = signed(data_id=None)
    verify(request)
    with pytest.raises(MalformedEvent, match=r"no signed data\.id"):
        normalize(request)


def test_a_body_naming_another_payment_is_refused() -> None:
    request = signed(body=samples.mercadopago_event(payment_id="999"))
    verify(request)
    with pytest.raises(SignatureRejected) as caught:
        normalize(request)
    assert caught.value.reason is RejectReason.UNSIGNED_FIELD


# ---------------------------------------------------------------- the signed time


@pytest.mark.parametrize("age", [TOLERANCE + 1, 86_400, 86_400 * 365])
def test_an_old_signature_is_refused(age: int) -> None:
    assert rejected(signed(ts=str(NOW - age))) is RejectReason.TIMESTAMP_OUT_OF_TOLERANCE


def test_a_signature_from_the_future_is_refused() -> None:
    assert rejected(signed(ts=str(NOW + TOLERANCE + 1))) is RejectReason.TIMESTAMP_OUT_OF_TOLERANCE


def test_the_tolerance_is_the_configured_one() -> None:
    request = signed(ts=str(NOW - 3600))
    MERCADOPAGO.verify(request, (SECRETS["mercadopago"][0],), now=NOW, tolerance=3600)


@pytest.mark.parametrize("offset_ms", [0, -TOLERANCE * 1000, TOLERANCE * 1000, -123])
def test_a_timestamp_in_milliseconds_is_read_as_milliseconds(offset_ms: int) -> None:
    ts = str(NOW * 1000 + offset_ms)
    request = signed(ts=ts)
    verify(request)
    assert normalize(request).occurred_at == datetime.fromtimestamp(int(ts) / 1000, UTC)


@pytest.mark.parametrize("age_ms", [TOLERANCE * 1000 + 1, 86_400_000 * 365])
def test_an_old_signature_in_milliseconds_is_refused(age_ms: int) -> None:
    stale = signed(ts=str(NOW * 1000 - age_ms))
    assert rejected(stale) is RejectReason.TIMESTAMP_OUT_OF_TOLERANCE


@pytest.mark.parametrize("ts", ["9" * 30, "9" * 5000, "0" * 40 + str(NOW)])
def test_an_absurd_timestamp_is_refused_not_crashed(ts: str) -> None:
    # Past 16 digits nothing is read, leading zeros included: int() of thousands
    # of digits would raise, and no genuine ts is padded.
    assert rejected(signed(ts=ts)) is RejectReason.TIMESTAMP_OUT_OF_TOLERANCE


# ---------------------------------------------------------------- an unambiguous manifest


def test_a_data_id_smuggling_the_request_id_does_not_verify() -> None:
    # Signs exactly like data.id 1234567890 with request id REQUEST_ID.
    genuine = signed()
    smuggled = replace(
        genuine,
        headers={"x-signature": genuine.headers["x-signature"]},
        query={"data.id": f"{DATA_ID};request-id:{REQUEST_ID}"},
    )
    assert rejected(smuggled) is RejectReason.MALFORMED_HEADER


@pytest.mark.parametrize(
    "data_id",
    [f"{DATA_ID};request-id:x", f"{DATA_ID};ts:1", "12:34", "12,34", "12 34", "1\u00e9", "a" * 129],
)
def test_a_data_id_outside_the_signed_alphabet_is_refused(data_id: str) -> None:
    assert rejected(signed(data_id=data_id)) is RejectReason.MALFORMED_HEADER


@pytest.mark.parametrize(
    "request_id", [f"{REQUEST_ID};ts:{NOW}", "req:1", "req;1", "r\ud800", "a" * 129]
)
def test_a_request_id_outside_the_signed_alphabet_is_refused(request_id: str) -> None:
    request = signed()
    forged = replace(request, headers={**request.headers, "x-request-id": request_id})
    assert rejected(forged) is RejectReason.MALFORMED_HEADER


@pytest.mark.parametrize("data_id", ["ORD01JQ4S4KY8HWQ6NA5PXB65B3D3", "7f25f9aa-eea6", "a_b", "1"])
def test_ids_as_mercado_pago_issues_them_verify_exactly_as_sent(data_id: str) -> None:
    request = signed(data_id=data_id, body=samples.mercadopago_event(payment_id=data_id))
    verify(request)
    assert normalize(request).event_id == f"{data_id}:{REQUEST_ID}"
    # Exactly as sent, as the SDK signs it: the lower-cased id is another manifest.
    if data_id.lower() != data_id:
        lowered = replace(request, query={"data.id": data_id.lower(), "type": "payment"})
        assert rejected(lowered) is RejectReason.MISMATCH


# ---------------------------------------------------------------- its own window


DAY = 86_400


@pytest.mark.parametrize("age", [TOLERANCE + 1, 6 * 3600, DAY])
def test_its_own_window_keeps_a_retry_after_an_outage(age: int) -> None:
    # Mercado Pago retries for days and may keep the first ts: a window of its own.
    patient = build_registry(mercadopago_tolerance_seconds=DAY)["mercadopago"]
    patient.verify(signed(ts=str(NOW - age)), SECRETS["mercadopago"], now=NOW, tolerance=TOLERANCE)


@pytest.mark.parametrize("age", [DAY + 1, 365 * DAY])
def test_its_own_window_still_refuses_an_older_signature(age: int) -> None:
    patient = build_registry(mercadopago_tolerance_seconds=DAY)["mercadopago"]
    with pytest.raises(SignatureRejected) as caught:
        patient.verify(
            signed(ts=str(NOW - age)), SECRETS["mercadopago"], now=NOW, tolerance=TOLERANCE
        )
    assert caught.value.reason is RejectReason.TIMESTAMP_OUT_OF_TOLERANCE


def test_the_receiver_gives_mercado_pago_a_day_unless_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hookline.settings import ReceiverSettings

    monkeypatch.setenv("QUEUE_URL", "https://sqs.example/queue.fifo")
    monkeypatch.setenv("SECRETS_NAME", "webhook-secrets")
    monkeypatch.delenv("MERCADOPAGO_TOLERANCE_SECONDS", raising=False)
    assert ReceiverSettings.from_env().mercadopago_tolerance_seconds == DAY
    monkeypatch.setenv("MERCADOPAGO_TOLERANCE_SECONDS", "600")
    assert ReceiverSettings.from_env().mercadopago_tolerance_seconds == 600
