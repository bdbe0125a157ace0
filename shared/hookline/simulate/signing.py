"""Signing a delivery the way each provider does (the inverse of hookline.providers).

Written from the providers' documentation, separately from the verification
code; tests/contract proves these signatures against the official SDKs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from urllib.parse import urlencode

from hookline.providers import PROVIDER_NAMES
from hookline.simulate.events import SimulatedEvent

# Every built-in provider: the simulator signs each as that provider does.
PROVIDERS = PROVIDER_NAMES
# Adyen's HMAC key: hex, as the Customer Area shows it.
_HEX_KEY = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# Adyen's signed fields, in order; value and currency come from `amount`.
_ADYEN_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)


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
    if provider == "razorpay":
        return {"x-razorpay-signature": _mac(key, body).hex()}
    if provider == "lemonsqueezy":
        return {"x-signature": _mac(key, body).hex()}
    if provider == "woocommerce":
        return {"x-wc-webhook-signature": base64.b64encode(_mac(key, body)).decode()}
    if provider == "github":
        return {"x-hub-signature-256": "sha256=" + _mac(key, body).hex()}
    if provider in ("svix", "standard"):
        prefix = "svix-" if provider == "svix" else "webhook-"
        encoded = secret.removeprefix("whsec_")
        signing_key = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
        signed = f"{event.event_id}.{timestamp}.".encode() + body
        digest = base64.b64encode(_mac(signing_key, signed)).decode()
        return {f"{prefix}timestamp": str(timestamp), f"{prefix}signature": f"v1,{digest}"}
    if provider == "paddle":
        digest = _mac(key, f"{timestamp}:".encode() + body).hex()
        return {"paddle-signature": f"ts={timestamp};h1={digest}"}
    if provider in ("adyen", "esewa", "khalti", "mollie"):
        # Adyen and eSewa sign inside the body (signed_body); Khalti and Mollie sign nothing.
        return {}  # Adyen signs fields inside the body: see signed_body.
    raise ValueError(f"unknown provider {provider!r}")


def signed_body(
    event: SimulatedEvent, secret: str, *, signed: SimulatedEvent | None = None
) -> bytes:
    """The body to send: Adyen's and eSewa's carry their own signature; the others are
    as built.

    `signed`: the genuine delivery a tampered `event` was captured from, whose
    signature it carries (the soak driver's forgeries).
    """
    if event.provider == "esewa":
        return _esewa_body(event, secret, signed or event)
    if event.provider != "adyen":
        return event.body
    source = json.loads((signed or event).body)["notificationItems"][0]["NotificationRequestItem"]
    fields = {**source, **source.get("amount", {})}
    signing = ":".join(str(fields.get(name, "")) for name in _ADYEN_FIELDS)
    digest = base64.b64encode(_mac(bytes.fromhex(secret), signing.encode())).decode()
    document = json.loads(event.body)
    item = document["notificationItems"][0]["NotificationRequestItem"]
    item.setdefault("additionalData", {})["hmacSignature"] = digest
    return json.dumps(document, separators=(",", ":")).encode()


def _esewa_body(event: SimulatedEvent, secret: str, signed: SimulatedEvent) -> bytes:
    """eSewa: base64 HMAC-SHA256 of `f1=v1,...` over signed_field_names, each value as its
    JSON text (a string's value, a number as written: 1000.0), then the document in
    base64 as the success redirect's `data`, forwarded by the shop as `data=<value>`."""
    source = json.loads(signed.body)
    message = ",".join(
        f"{name}={value if isinstance(value, str) else json.dumps(value)}"
        for name, value in (
            (name, source[name]) for name in source["signed_field_names"].split(",")
        )
    )
    document = json.loads(event.body)
    document["signature"] = base64.b64encode(_mac(secret.encode(), message.encode())).decode()
    data = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
    return urlencode({"data": data}).encode()


def forged_secret(secret: str) -> str:
    """A secret of the same form that is not the real one (for testing refusals)."""
    if _HEX_KEY.fullmatch(secret):
        return hashlib.sha256(b"forged-" + secret.encode()).hexdigest().upper()
    if secret.startswith("whsec_"):
        return "whsec_" + base64.b64encode(b"forged-" + secret.encode()[:16]).decode()
    return "forged-" + secret
