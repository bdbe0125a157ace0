"""hookline's WooCommerce verdict is the one WooCommerce's own code gives.

There is no official Python SDK. WooCommerce signs in PHP, and its own code and
tests are the reference (woocommerce/woocommerce):

- plugins/woocommerce/includes/class-wc-webhook.php (commit
  77ab3bf50fd31885bc32cc7b557f8114406734e2), `WC_Webhook::generate_signature`:
  `base64_encode(hash_hmac($hash_algo, $payload, wp_specialchars_decode($this->get_secret(),
  ENT_QUOTES), true))`, `$hash_algo` defaulting to sha256, over the body exactly as
  sent (`trim(wp_json_encode($payload))`), in `X-WC-Webhook-Signature`;
  `deliver_ping` posts `webhook_id=<id>` with no signature at all;
- plugins/woocommerce/tests/legacy/unit-tests/webhooks/crud.php (commit
  6147c5e685a97beb873ac2548044cf04d2a48a66), `test_generate_signature`: a new
  webhook (empty secret) signs the payload `secret` as
  `GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs=`
  https://github.com/woocommerce/woocommerce/blob/6147c5e685a97beb873ac2548044cf04d2a48a66/plugins/woocommerce/tests/legacy/unit-tests/webhooks/crud.php

`generate_signature` below transcribes the PHP line for line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hookline.errors import InvalidSecret, SignatureRejected
from hookline.providers import WebhookRequest
from hookline.providers.woocommerce import WooCommerce
from hookline.secrets import provider_secrets
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = 1_760_000_000
CASES = settings(max_examples=200, deadline=None)
WOOCOMMERCE = WooCommerce()
UPSTREAM_VECTOR = "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs="

# WordPress's wp_specialchars_decode( $string, ENT_QUOTES ) translation table.
_WP_DECODE = {
    "&#039;": "'",
    "&#x27;": "'",
    "&quot;": '"',
    "&#034;": '"',
    "&#x22;": '"',
    "&lt;": "<",
    "&#060;": "<",
    "&gt;": ">",
    "&#062;": ">",
    "&amp;": "&",
    "&#038;": "&",
    "&#x26;": "&",
}


def wp_specialchars_decode(text: str) -> str:
    for entity, character in _WP_DECODE.items():
        text = text.replace(entity, character)
    return text


def generate_signature(payload: bytes, secret: str) -> str:
    """WC_Webhook::generate_signature, transcribed."""
    key = wp_specialchars_decode(secret).encode()
    return base64.b64encode(hmac.new(key, payload, hashlib.sha256).digest()).decode()


def hookline_accepts(payload: bytes, signature: str, secret: str) -> bool:
    request = WebhookRequest(body=payload, headers={"x-wc-webhook-signature": signature})
    try:
        WOOCOMMERCE.verify(request, (secret,), now=NOW, tolerance=300)
    except SignatureRejected:
        return False
    return True


def flip(text: str, index: int) -> str:
    position = index % len(text)
    replacement = "A" if text[position] != "A" else "B"
    return text[:position] + replacement + text[position + 1 :]


bodies = st.text(min_size=0, max_size=400)
# WooCommerce's default secret is wc_rand_hash() (hex); an admin may type any text.
# Entity-free here: the decode rule has its own test below.
secrets = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="&"),
    min_size=1,
    max_size=64,
)


def test_woocommerces_own_test_vector() -> None:
    # The same algorithm: hookline's verifier given WooCommerce's (empty) key agrees.
    assert generate_signature(b"secret", "") == UPSTREAM_VECTOR
    assert hookline_accepts(b"secret", UPSTREAM_VECTOR, "")


def test_but_an_empty_secret_is_never_configured() -> None:
    # The vector is signed with no key at all: anyone can make it. hookline refuses the
    # configuration (503 and /health), so such a request never reaches verify.
    with pytest.raises(InvalidSecret):
        provider_secrets({"woocommerce": [""]}, "woocommerce")


@CASES
@given(body=bodies, secret=secrets)
def test_what_woocommerce_signs_hookline_accepts(body: str, secret: str) -> None:
    payload = body.strip().encode()  # trim( wp_json_encode( $payload ) )
    assert hookline_accepts(payload, generate_signature(payload, secret), secret)


@CASES
@given(body=bodies, secret=secrets, other=secrets, index=st.integers(0, 10_000))
def test_every_tampered_variant_is_refused(body: str, secret: str, other: str, index: int) -> None:
    payload = body.encode()
    signature = generate_signature(payload, secret)
    variants = [
        (payload + b"x", signature, secret),
        (payload, flip(signature, index), secret),
        (payload, signature.rstrip("="), secret),
        (payload, hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest(), secret),
        (payload, base64.urlsafe_b64encode(base64.b64decode(signature)).decode(), secret),
    ]
    if body:
        variants.append((flip(body, index).encode(), signature, secret))
    if other != secret:
        variants.append((payload, signature, other))
    for variant in variants:
        if variant[:2] == (payload, signature) and variant[2] == secret:
            continue  # a variant that happens to equal the original (urlsafe without +/)
        assert not hookline_accepts(*variant), variant


def test_the_secret_to_configure_is_the_one_typed_entities_decoded() -> None:
    # WooCommerce decodes HTML entities in its stored secret before keying the HMAC.
    payload = b'{"id":727}'
    signature = generate_signature(payload, "s3cr&amp;t")
    assert hookline_accepts(payload, signature, "s3cr&t")
    assert not hookline_accepts(payload, signature, "s3cr&amp;t")


def test_the_save_time_ping_is_unsigned_and_refused() -> None:
    # WC_Webhook::deliver_ping: body `webhook_id=<id>`, no X-WC-Webhook-Signature.
    ping = WebhookRequest(body=b"webhook_id=17", headers={})
    with pytest.raises(SignatureRejected):
        WOOCOMMERCE.verify(ping, ("any-secret",), now=NOW, tolerance=300)
