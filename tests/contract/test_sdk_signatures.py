"""Signatures made by the providers' own SDKs are accepted; every tampered variant is refused."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import standardwebhooks
import stripe
from hookline.errors import SignatureRejected
from hookline.providers import WebhookRequest, build_registry
from hypothesis import given, settings
from hypothesis import strategies as st
from svix.webhooks import Webhook as SvixWebhook

REGISTRY = build_registry()
NOW = 1_760_000_000
TOLERANCE = 300
CASES = settings(max_examples=200, deadline=None)

bodies = st.text(min_size=0, max_size=400)
ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
    min_size=1,
    max_size=40,
)
raw_keys = st.binary(min_size=16, max_size=48)
stripe_secrets = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=40
).map(lambda s: f"whsec_{s}")


def accepted(provider: str, request: WebhookRequest, secret: str, now: int = NOW) -> bool:
    try:
        REGISTRY[provider].verify(request, (secret,), now=now, tolerance=TOLERANCE)
    except SignatureRejected:
        return False
    return True


def flip(text: str, index: int) -> str:
    position = index % len(text)
    replacement = "A" if text[position] != "A" else "B"
    return text[:position] + replacement + text[position + 1 :]


# ---------------------------------------------------------------- stripe


def stripe_request(body: str, header: str) -> WebhookRequest:
    return WebhookRequest(body=body.encode(), headers={"stripe-signature": header})


@CASES
@given(body=bodies, secret=stripe_secrets, skew=st.integers(-TOLERANCE, TOLERANCE))
def test_stripe_sdk_signature_is_accepted(body: str, secret: str, skew: int) -> None:
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=NOW + skew)
    assert accepted("stripe", stripe_request(body, header), secret)
    # And the SDK agrees with itself on what we accepted.
    stripe.WebhookSignature.verify_header(body, header, secret, tolerance=None)


@CASES
@given(body=bodies, secret=stripe_secrets, other=stripe_secrets, index=st.integers(0, 10_000))
def test_stripe_tampered_variants_are_refused(
    body: str, secret: str, other: str, index: int
) -> None:
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=NOW)
    timestamp, signature = header.split(",")
    variants = [
        stripe_request(body + "x", header),
        stripe_request(body, f"t={NOW + 1},{signature}"),
        stripe_request(body, f"{timestamp},v1={flip(signature[3:], index)}"),
        stripe_request(body, f"{timestamp},v0={signature[3:]}"),
    ]
    if body:
        variants.append(stripe_request(flip(body, index), header))
    for variant in variants:
        if variant.body != body.encode() or variant.headers != {"stripe-signature": header}:
            assert not accepted("stripe", variant, secret), variant
    if other != secret:
        assert not accepted("stripe", stripe_request(body, header), other)
    old = stripe.WebhookSignature.generate_signature_header(
        body, secret, timestamp=NOW - TOLERANCE - 1
    )
    assert not accepted("stripe", stripe_request(body, old), secret)


# ---------------------------------------------------------------- svix and standard webhooks

Signer = Callable[[str, str, datetime, str], str]


def _svix_sign(secret: str, msg_id: str, timestamp: datetime, body: str) -> str:
    return str(SvixWebhook(secret).sign(msg_id, timestamp, body))


def _standard_sign(secret: str, msg_id: str, timestamp: datetime, body: str) -> str:
    return str(standardwebhooks.Webhook(secret).sign(msg_id, timestamp, body))


SCHEMES: dict[str, tuple[str, Signer]] = {
    "svix": ("svix-", _svix_sign),
    "standard": ("webhook-", _standard_sign),
}


def scheme_request(
    prefix: str, msg_id: str, timestamp: int, signature: str, body: str
) -> WebhookRequest:
    return WebhookRequest(
        body=body.encode(),
        headers={
            prefix + "id": msg_id,
            prefix + "timestamp": str(timestamp),
            prefix + "signature": signature,
        },
    )


@pytest.mark.parametrize("provider", SCHEMES)
@CASES
@given(body=bodies, key=raw_keys, msg_id=ids, skew=st.integers(-TOLERANCE, TOLERANCE))
def test_svix_and_standard_sdk_signatures_are_accepted(
    provider: str, body: str, key: bytes, msg_id: str, skew: int
) -> None:
    prefix, signer = SCHEMES[provider]
    secret = "whsec_" + base64.b64encode(key).decode()
    timestamp = NOW + skew
    signature = signer(secret, msg_id, datetime.fromtimestamp(timestamp, UTC), body)
    assert accepted(provider, scheme_request(prefix, msg_id, timestamp, signature, body), secret)
    # Several signatures in one header (the SDKs send this during rotation): any may match.
    crowded = f"v1,{base64.b64encode(b'x' * 32).decode()} {signature}"
    assert accepted(provider, scheme_request(prefix, msg_id, timestamp, crowded, body), secret)


@pytest.mark.parametrize("provider", SCHEMES)
@CASES
@given(body=bodies, key=raw_keys, other=raw_keys, msg_id=ids, index=st.integers(0, 10_000))
def test_svix_and_standard_tampered_variants_are_refused(
    provider: str, body: str, key: bytes, other: bytes, msg_id: str, index: int
) -> None:
    prefix, signer = SCHEMES[provider]
    secret = "whsec_" + base64.b64encode(key).decode()
    signature = signer(secret, msg_id, datetime.fromtimestamp(NOW, UTC), body)
    variants = [
        scheme_request(prefix, msg_id, NOW, signature, body + "x"),
        scheme_request(prefix, msg_id + "x", NOW, signature, body),
        scheme_request(prefix, msg_id, NOW + 1, signature, body),
        scheme_request(prefix, msg_id, NOW, "v1," + flip(signature[3:], index), body),
        scheme_request(prefix, msg_id, NOW, "v2," + signature[3:], body),
    ]
    for variant in variants:
        assert not accepted(provider, variant, secret)
    if other != key:
        other_secret = "whsec_" + base64.b64encode(other).decode()
        assert not accepted(
            provider, scheme_request(prefix, msg_id, NOW, signature, body), other_secret
        )
    stale = NOW - TOLERANCE - 1
    old = signer(secret, msg_id, datetime.fromtimestamp(stale, UTC), body)
    assert not accepted(provider, scheme_request(prefix, msg_id, stale, old, body), secret)
