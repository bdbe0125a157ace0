"""hookline's Lemon Squeezy verdict is the one Lemon Squeezy's own code and docs give.

There is no official Python SDK, and Lemon Squeezy publishes no signature test
vector. What it publishes:

- https://docs.lemonsqueezy.com/help/webhooks/signing-requests: the signing
  secret keys an HMAC-SHA256 *hex digest* of the payload, sent in `X-Signature`;
- its official Laravel package, lmsqueezy/laravel at commit
  0ca551671d1deeda3661d9a2d632abb137c882c0,
  src/Http/Middleware/VerifyWebhookSignature.php:
  `hash_equals(hash_hmac('sha256', $request->getContent(), $secret), $signature)`;
- https://docs.lemonsqueezy.com/help/webhooks (the `order_created` example body).

`lemonsqueezy_laravel_accepts` below is a line-by-line transcription of that
middleware; hypothesis checks hookline's verdict equals it over valid and
tampered inputs. One deliberate difference: hookline trims whitespace around
the header value (as API Gateway does), PHP's hash_equals does not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from hookline.errors import SignatureRejected
from hookline.providers import WebhookRequest
from hookline.providers.lemonsqueezy import LemonSqueezy
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = 1_760_000_000
CASES = settings(max_examples=200, deadline=None)
LEMONSQUEEZY = LemonSqueezy()

# The docs' example order_created body (docs.lemonsqueezy.com/help/webhooks), as JSON text.
DOCUMENTED_BODY = json.dumps(
    {
        "meta": {"event_name": "order_created"},
        "data": {
            "type": "orders",
            "id": "1",
            "attributes": {
                "store_id": 1,
                "identifier": "636f855c-1fb9-4c07-b75c-3a10afef010a",
                "order_number": 1,
                "user_name": "Darlene Daugherty",
                "user_email": "gernser@yahoo.com",
                "currency": "USD",
                "currency_rate": "1.0000",
                "subtotal": 999,
                "discount_total": 0,
                "tax": 200,
                "total": 1199,
                "subtotal_usd": 999,
                "discount_total_usd": 0,
                "tax_usd": 200,
                "total_usd": 1199,
                "tax_name": "VAT",
                "tax_rate": "20.00",
                "status": "paid",
                "status_formatted": "Paid",
                "refunded": False,
                "refunded_at": None,
                "created_at": "2021-08-11T13:47:28.000000Z",
                "updated_at": "2021-08-11T13:47:28.000000Z",
            },
        },
    },
    indent=2,
)

bodies = st.text(min_size=0, max_size=400)
# "anything you want but normally a random string between 6 and 40 characters" (the docs).
secrets = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=6, max_size=40
)


def lemonsqueezy_laravel_accepts(payload: bytes, signature: str, secret: str) -> bool:
    """VerifyWebhookSignature::isInvalidSignature, negated: hash_hmac is lower-case hex."""
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


def hookline_accepts(payload: bytes, signature: str, secret: str) -> bool:
    request = WebhookRequest(body=payload, headers={"x-signature": signature})
    try:
        LEMONSQUEEZY.verify(request, (secret,), now=NOW, tolerance=300)
    except SignatureRejected:
        return False
    return True


def flip(text: str, index: int) -> str:
    position = index % len(text)
    replacement = "a" if text[position] != "a" else "b"
    return text[:position] + replacement + text[position + 1 :]


@CASES
@given(body=bodies, secret=secrets)
def test_what_lemon_squeezy_signs_hookline_accepts(body: str, secret: str) -> None:
    payload = body.encode()
    signature = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    assert lemonsqueezy_laravel_accepts(payload, signature, secret)
    assert hookline_accepts(payload, signature, secret)


@CASES
@given(body=bodies, secret=secrets, other=secrets, index=st.integers(0, 10_000))
def test_what_lemon_squeezy_refuses_hookline_refuses(
    body: str, secret: str, other: str, index: int
) -> None:
    payload = body.encode()
    signature = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    variants = [
        (payload + b" ", signature, secret),
        (payload, flip(signature, index), secret),
        (payload, signature.upper(), secret),
        (payload, signature[:-2], secret),
        (payload, f"sha256={signature}", secret),
    ]
    if body:
        variants.append((flip(body, index).encode(), signature, secret))
    if other != secret:
        variants.append((payload, signature, other))
    for variant in variants:
        if variant == (payload, signature, secret):
            continue
        assert not lemonsqueezy_laravel_accepts(*variant), variant
        assert not hookline_accepts(*variant), variant


def test_the_documented_example_verifies_and_is_named_by_its_signed_facts() -> None:
    payload = DOCUMENTED_BODY.encode()
    secret = "documented-signing-secret"
    signature = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    assert lemonsqueezy_laravel_accepts(payload, signature, secret)
    request = WebhookRequest(
        body=payload, headers={"x-signature": signature, "x-event-name": "order_created"}
    )
    LEMONSQUEEZY.verify(request, (secret,), now=NOW, tolerance=300)
    envelope = LEMONSQUEEZY.normalize(request, received_at=datetime.fromtimestamp(NOW, UTC))
    assert envelope.event_id == "order_created:1:2021-08-11T13:47:28.000000Z"
    assert envelope.event_type == "order_created"
    assert envelope.object_id == "1"
    assert envelope.occurred_at == datetime(2021, 8, 11, 13, 47, 28, tzinfo=UTC)
    # The pretty-printed body is what was signed: re-serializing it breaks the signature.
    compact = json.dumps(json.loads(payload), separators=(",", ":")).encode()
    assert not hookline_accepts(compact, signature, secret)
