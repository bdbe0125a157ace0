"""Paddle Billing: what paddle-python-sdk signs and accepts, hookline accepts; every tampered
variant is refused by both.

The SDK (`paddle_billing.Notifications`) reads a request through `request.headers.get
("Paddle-Signature")` and `request.body` (bytes), and signs `{ts}:{body}` with
`PaddleSignature.calculate_hmac(secret_key, ...)`. Its time check reads the wall
clock (`time()`), so the SDK verdicts here run with `verify_time_drift=False` and
hookline's window is tested against a fixed `now`. Deliberate differences
(hookline.providers.paddle): a 300 s window, not 5 s; two `ts` refused; unknown
keys skipped rather than raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hookline.errors import RejectReason, SignatureRejected
from hookline.providers.base import WebhookRequest
from hookline.providers.paddle import Paddle
from hypothesis import given, settings
from hypothesis import strategies as st
from paddle_billing.Notifications import PaddleSignature, Secret, Verifier

PADDLE = Paddle()
NOW = 1_760_000_000
TOLERANCE = 300
CASES = settings(max_examples=200, deadline=None)

bodies = st.text(min_size=0, max_size=400)
secrets = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=8, max_size=60).map(
    lambda s: f"pdl_ntfset_{s}"
)


@dataclass
class SdkRequest:
    """The shape paddle_billing.Notifications.Requests.Request reads."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def sdk_header(body: str, secret: str, timestamp: int) -> str:
    digest = PaddleSignature.calculate_hmac(secret, f"{timestamp}:{body}".encode()).hexdigest()
    return f"ts={timestamp};h1={digest}"


def sdk_accepts(body: str, header: str, secret: str) -> bool:
    request = SdkRequest(body.encode(), {"Paddle-Signature": header})
    try:
        return bool(Verifier().verify(request, [Secret(secret)], verify_time_drift=False))
    except (ValueError, ConnectionRefusedError):
        return False  # its refusals: a malformed header raises, no secret matching raises


def accepted(body: str, header: str, secret: str, now: int = NOW) -> bool:
    request = WebhookRequest(body=body.encode(), headers={"paddle-signature": header})
    try:
        PADDLE.verify(request, (secret,), now=now, tolerance=TOLERANCE)
    except SignatureRejected:
        return False
    return True


def flip(text: str, index: int) -> str:
    position = index % len(text)
    replacement = "a" if text[position] != "a" else "b"
    return text[:position] + replacement + text[position + 1 :]


@CASES
@given(body=bodies, secret=secrets, skew=st.integers(-TOLERANCE, TOLERANCE))
def test_sdk_signature_is_accepted(body: str, secret: str, skew: int) -> None:
    header = sdk_header(body, secret, NOW + skew)
    assert sdk_accepts(body, header, secret)
    assert accepted(body, header, secret)


@CASES
@given(body=bodies, secret=secrets, previous=secrets)
def test_several_h1_during_rotation_any_may_match(body: str, secret: str, previous: str) -> None:
    old = sdk_header(body, previous, NOW).split(";")[1]
    header = f"{sdk_header(body, secret, NOW)};{old}"
    assert sdk_accepts(body, header, secret)
    assert accepted(body, header, secret)
    rotated = WebhookRequest(body=body.encode(), headers={"paddle-signature": header})
    PADDLE.verify(rotated, (previous, secret), now=NOW, tolerance=TOLERANCE)


@CASES
@given(body=bodies, secret=secrets, other=secrets, index=st.integers(0, 10_000))
def test_tampered_variants_are_refused_by_both(
    body: str, secret: str, other: str, index: int
) -> None:
    header = sdk_header(body, secret, NOW)
    timestamp, signature = header.split(";")
    variants = [
        (body + "x", header),
        (body, f"ts={NOW + 1};{signature}"),
        (body, f"{timestamp};h1={flip(signature[3:], index)}"),
    ]
    if body:
        variants.append((flip(body, index), header))
    for variant_body, variant_header in variants:
        if (variant_body, variant_header) == (body, header):
            continue
        assert not sdk_accepts(variant_body, variant_header, secret)
        assert not accepted(variant_body, variant_header, secret)
    if other != secret:
        assert not sdk_accepts(body, header, other)
        assert not accepted(body, header, other)


@CASES
@given(body=bodies, secret=secrets, late=st.integers(TOLERANCE + 1, 10**9))
def test_a_signature_outside_the_window_is_refused(body: str, secret: str, late: int) -> None:
    assert not accepted(body, sdk_header(body, secret, NOW - late), secret)
    assert not accepted(body, sdk_header(body, secret, NOW + late), secret)


def test_the_sdk_refuses_an_old_signature_with_its_own_clock() -> None:
    """The SDK's default window is 5 s on the wall clock; hookline's is the receiver's."""
    body, secret = '{"event_id":"evt_1"}', "pdl_ntfset_fake"
    header = sdk_header(body, secret, NOW)
    request = SdkRequest(body.encode(), {"Paddle-Signature": header})
    assert not Verifier().verify(request, [Secret(secret)])


def test_the_documented_header_shape_is_read() -> None:
    """https://developer.paddle.com/webhooks/signature-verification shows
    `ts=1671552777;h1=eb4d0dc8853be92b7f063b9f3ba5233eb920a09459b6e6b2c26705b4364db151`.
    Paddle publishes no body or key with it: the header parses, and without the key
    it is a mismatch, not a malformed header."""
    header = "ts=1671552777;h1=eb4d0dc8853be92b7f063b9f3ba5233eb920a09459b6e6b2c26705b4364db151"
    request = WebhookRequest(body=b"{}", headers={"paddle-signature": header})
    with pytest.raises(SignatureRejected) as caught:
        PADDLE.verify(request, ("pdl_ntfset_unknown",), now=1671552777, tolerance=TOLERANCE)
    assert caught.value.reason is RejectReason.MISMATCH
