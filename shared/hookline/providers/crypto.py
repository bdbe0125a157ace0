"""HMAC-SHA256 and constant-time comparison, the only cryptography providers need."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable, Iterable


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    # hmac.digest: OpenSSL's one-shot HMAC, the same bytes as hmac.new(...).digest().
    return hmac.digest(key, message, "sha256")


def hex_digest(key: bytes, message: bytes) -> str:
    return hmac_sha256(key, message).hex()


def base64_digest(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac_sha256(key, message)).decode("ascii")


def check_body_signature(
    signature: str, secrets: Iterable[str], body: bytes, digest: Callable[[bytes, bytes], str]
) -> bool:
    """Whether `signature` is `digest(secret, body)` for any of `secrets` (the providers
    that sign the body alone: Shopify, Razorpay, Lemon Squeezy, WooCommerce)."""
    return matches_any([digest(secret.encode("utf-8"), body) for secret in secrets], [signature])


def matches_any(expected: Iterable[str], candidates: Iterable[str]) -> bool:
    """True if any candidate equals any expected value, compared in constant time.

    Every pair is compared (no early exit), so timing says nothing about which
    secret or which header entry came close. Bytes, not str: compare_digest
    refuses non-ASCII str, and header values can contain anything.
    """
    expected_bytes = [value.encode("utf-8") for value in expected]
    found = False
    for candidate in candidates:
        candidate_bytes = candidate.encode("utf-8", "replace")
        for value in expected_bytes:
            found |= hmac.compare_digest(value, candidate_bytes)
    return found
