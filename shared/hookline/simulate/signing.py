"""Signing a delivery the way each provider does (the inverse of hookline.providers).

Written from the providers' documentation, separately from the verification
code; tests/contract proves these signatures against the official SDKs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from hookline.simulate.events import SimulatedEvent

PROVIDERS = ("stripe", "square", "mercadopago", "shopify", "github", "svix", "standard")


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def signature_headers(
    event: SimulatedEvent, secret: str, *, url: str, timestamp: int
) -> dict[str, str]:
    """The signature headers for `event`, signed with `secret` at `timestamp`.

    `url` is the notification URL, which only Square signs.
    """
    key = secret.encode()
    body = event.body
    provider = event.provider
    if provider == "stripe":
        digest = _mac(key, f"{timestamp}.".encode() + body).hex()
        return {"stripe-signature": f"t={timestamp},v1={digest}"}
    if provider == "square":
        digest = base64.b64encode(_mac(key, url.encode() + body)).decode()
        return {"x-square-hmacsha256-signature": digest}
    if provider == "mercadopago":
        data_id = event.query.get("data.id", "")
        # data.id exactly as sent in the query, as the official SDKs sign it.
        manifest = f"id:{data_id};request-id:{event.headers['x-request-id']};ts:{timestamp};"
        return {"x-signature": f"ts={timestamp},v1={_mac(key, manifest.encode()).hex()}"}
    if provider == "shopify":
        return {"x-shopify-hmac-sha256": base64.b64encode(_mac(key, body)).decode()}
    if provider == "github":
        return {"x-hub-signature-256": "sha256=" + _mac(key, body).hex()}
    if provider in ("svix", "standard"):
        prefix = "svix-" if provider == "svix" else "webhook-"
        encoded = secret.removeprefix("whsec_")
        signing_key = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
        signed = f"{event.event_id}.{timestamp}.".encode() + body
        digest = base64.b64encode(_mac(signing_key, signed)).decode()
        return {f"{prefix}timestamp": str(timestamp), f"{prefix}signature": f"v1,{digest}"}
    raise ValueError(f"unknown provider {provider!r}")


def forged_secret(secret: str) -> str:
    """A secret of the same form that is not the real one (for testing refusals)."""
    if secret.startswith("whsec_"):
        return "whsec_" + base64.b64encode(b"forged-" + secret.encode()[:16]).decode()
    return "forged-" + secret
