"""hookline's Razorpay verdict is the official SDK's: `razorpay.Utility().verify_webhook_signature`.

The SDK (razorpay-python, `razorpay/utility/utility.py`) takes the body as text,
computes the hex HMAC-SHA256 with the webhook secret and compares it with
`hmac.compare_digest`; a mismatch raises SignatureVerificationError. The SDK
signs nothing, so valid signatures are made here the way Razorpay documents
them (razorpay.com/docs/webhooks/validate-test/) and proven valid by the SDK
first; then every tampered variant must be refused by both.
"""

from __future__ import annotations

import hashlib
import hmac

import razorpay
from hookline.errors import SignatureRejected
from hookline.providers import WebhookRequest
from hookline.providers.razorpay import Razorpay
from hypothesis import given, settings
from hypothesis import strategies as st
from razorpay.errors import SignatureVerificationError

NOW = 1_760_000_000
CASES = settings(max_examples=200, deadline=None)
RAZORPAY = Razorpay()
SDK = razorpay.Utility()

bodies = st.text(min_size=0, max_size=400)
# What a dashboard secret is: printable text, never blank (hookline's secret rule).
secrets = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64
)


def hookline_accepts(body: str, signature: str, secret: str) -> bool:
    request = WebhookRequest(body=body.encode(), headers={"x-razorpay-signature": signature})
    try:
        RAZORPAY.verify(request, (secret,), now=NOW, tolerance=300)
    except SignatureRejected:
        return False
    return True


def sdk_accepts(body: str, signature: str, secret: str) -> bool:
    try:
        return bool(SDK.verify_webhook_signature(body, signature, secret))
    except SignatureVerificationError:
        return False


def documented_signature(body: str, secret: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


def flip(text: str, index: int) -> str:
    position = index % len(text)
    replacement = "a" if text[position] != "a" else "b"
    return text[:position] + replacement + text[position + 1 :]


@CASES
@given(body=bodies, secret=secrets)
def test_what_the_sdk_accepts_hookline_accepts(body: str, secret: str) -> None:
    signature = documented_signature(body, secret)
    assert sdk_accepts(body, signature, secret)
    assert hookline_accepts(body, signature, secret)


@CASES
@given(body=bodies, secret=secrets, other=secrets, index=st.integers(0, 10_000))
def test_what_the_sdk_refuses_hookline_refuses(
    body: str, secret: str, other: str, index: int
) -> None:
    signature = documented_signature(body, secret)
    variants = [
        (body + "x", signature, secret),
        (body, flip(signature, index), secret),
        (body, signature.upper(), secret),
        (body, signature[:-1], secret),
        (body, signature + "0", secret),
        (body, f"sha256={signature}", secret),
    ]
    if body:
        variants.append((flip(body, index), signature, secret))
    if other != secret:
        variants.append((body, signature, other))
    for variant in variants:
        if variant == (body, signature, secret):
            continue  # an all-digit digest upper-cased is itself
        assert not sdk_accepts(*variant), variant
        assert not hookline_accepts(*variant), variant


@CASES
@given(body=bodies, secret=secrets, candidate=st.text(max_size=80))
def test_any_signature_text_gets_the_sdks_verdict(body: str, secret: str, candidate: str) -> None:
    # Text that is no hex digest at all: both refuse (hookline never crashes on it).
    # hookline strips surrounding whitespace (API Gateway does too), so padded values aside.
    if candidate != candidate.strip() or not candidate.isascii():
        return
    assert hookline_accepts(body, candidate, secret) == sdk_accepts(body, candidate, secret)


def test_the_documented_payload_verifies() -> None:
    # The payment.captured sample of razorpay.com/docs/webhooks/payments/, compact as sent.
    body = (
        '{"entity":"event","account_id":"acc_BFQ7uQEaa7j2z7","event":"payment.captured",'
        '"contains":["payment"],"payload":{"payment":{"entity":{"id":"pay_DESlfW9H8K9uqM",'
        '"entity":"payment","amount":100,"currency":"INR","status":"captured",'
        '"order_id":"order_DESlLckIVRkHWj","amount_refunded":0,"captured":true,'
        '"method":"netbanking","notes":[],"created_at":1567674599}}},"created_at":1567674606}'
    )
    secret = "rzp-documented-example-fake"
    signature = documented_signature(body, secret)
    assert sdk_accepts(body, signature, secret)
    assert hookline_accepts(body, signature, secret)
