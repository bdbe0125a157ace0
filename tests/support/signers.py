"""Sign requests the way each provider does, written from the providers' docs.

Deliberately independent of hookline.providers: a test that signs with the
code under test proves nothing. The official SDKs check these in tests/contract.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, replace

from hookline.providers import WebhookRequest

from tests.support import samples

NOW = 1_760_000_000

# Obviously fake secrets, two per provider: the current one first, then the one before rotation.
SECRETS: dict[str, tuple[str, str]] = {
    "stripe": ("whsec_test_stripe_current_fake", "whsec_test_stripe_previous_fake"),
    "square": ("square-test-signature-key-fake", "square-previous-signature-key-fake"),
    "mercadopago": ("mp-test-secret-fake-0001", "mp-previous-secret-fake-0000"),
    "shopify": ("shpss_test_fake_current", "shpss_test_fake_previous"),
    "github": ("github-test-secret-fake", "github-previous-secret-fake"),
    "svix": (
        "whsec_" + base64.b64encode(b"svix-test-key-fake-current-0001").decode(),
        "whsec_" + base64.b64encode(b"svix-test-key-fake-previous-000").decode(),
    ),
    "standard": (
        "whsec_" + base64.b64encode(b"standard-test-key-fake-current1").decode(),
        "whsec_" + base64.b64encode(b"standard-test-key-fake-previous").decode(),
    ),
}

# What an attacker without the secret signs with: valid in form, wrong in value.
FORGED_SECRETS: dict[str, str] = {
    provider: (
        "whsec_" + base64.b64encode(b"attacker-key-" + provider.encode()).decode()
        if current.startswith("whsec_") and provider in ("svix", "standard")
        else f"attacker-secret-{provider}"
    )
    for provider, (current, _previous) in SECRETS.items()
}


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class Signed:
    """A validly signed request plus what the tests need to vary one thing."""

    provider: str
    request: WebhookRequest
    signature_headers: tuple[str, ...]
    event_id: str
    event_type: str
    object_id: str | None

    def with_headers(self, **changes: str | None) -> WebhookRequest:
        headers = dict(self.request.headers)
        for name, value in changes.items():
            key = name.replace("_", "-")
            if value is None:
                headers.pop(key, None)
            else:
                headers[key] = value
        return replace(self.request, headers=headers)

    def with_body(self, body: bytes) -> WebhookRequest:
        return replace(self.request, body=body)


def sign(
    provider: str,
    body: bytes | None = None,
    *,
    secret: str | None = None,
    timestamp: int = NOW,
) -> Signed:
    secret = secret or SECRETS[provider][0]
    key = secret.encode()
    if provider == "stripe":
        body = body if body is not None else samples.encode(samples.stripe_event())
        signature = _hmac(key, f"{timestamp}.".encode() + body).hex()
        return Signed(
            provider,
            WebhookRequest(
                body=body, headers={"stripe-signature": f"t={timestamp},v1={signature}"}
            ),
            ("stripe-signature",),
            "evt_1NG8Du2eZvKYlo2CUI79vXWy",
            "payment_intent.succeeded",
            "pi_3NG8Dt2eZvKYlo2C0ABCDEFG",
        )
    if provider == "square":
        body = body if body is not None else samples.encode(samples.square_event())
        signature = base64.b64encode(_hmac(key, samples.SQUARE_URL.encode() + body)).decode()
        return Signed(
            provider,
            WebhookRequest(
                body=body,
                headers={"x-square-hmacsha256-signature": signature},
                url=samples.SQUARE_URL,
            ),
            ("x-square-hmacsha256-signature",),
            "6a8f5f28-54a1-4eb0-a98a-3111513fd4fc",
            "payment.updated",
            "KkAkhdMsgzn59SM8A89WgKwekxLZY",
        )
    if provider == "mercadopago":
        body = body if body is not None else samples.encode(samples.mercadopago_event())
        request_id = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"
        manifest = f"id:1234567890;request-id:{request_id};ts:{timestamp};"
        signature = _hmac(key, manifest.encode()).hex()
        query = {"data.id": "1234567890", "type": "payment"}
        return Signed(
            provider,
            WebhookRequest(
                body=body,
                headers={
                    "x-signature": f"ts={timestamp},v1={signature}",
                    "x-request-id": request_id,
                },
                query=query,
            ),
            ("x-signature",),
            # hookline's identity for it: the signed data.id and request id, not the body's id.
            f"1234567890:{request_id}",
            "payment",
            "1234567890",
        )
    if provider == "shopify":
        body = body if body is not None else samples.encode(samples.shopify_order())
        signature = base64.b64encode(_hmac(key, body)).decode()
        return Signed(
            provider,
            WebhookRequest(
                body=body,
                headers={
                    "x-shopify-hmac-sha256": signature,
                    "x-shopify-topic": "orders/paid",
                    "x-shopify-event-id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
                    "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                    "x-shopify-shop-domain": "example.myshopify.com",
                    "x-shopify-triggered-at": "2026-11-20T20:15:47.000Z",
                },
            ),
            ("x-shopify-hmac-sha256",),
            "98880550-7158-44d4-b7cd-2c97c8a091b5",
            "orders/paid",
            "820982911946154508",
        )
    if provider == "github":
        body = body if body is not None else samples.encode(samples.github_push())
        signature = "sha256=" + _hmac(key, body).hex()
        return Signed(
            provider,
            WebhookRequest(
                body=body,
                headers={
                    "x-hub-signature-256": signature,
                    "x-github-event": "pull_request",
                    "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                    "x-github-hook-id": "292430182",
                },
            ),
            ("x-hub-signature-256",),
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "pull_request.opened",
            "octo-org/hello-world/pull_request/279147437",
        )
    if provider in ("svix", "standard"):
        prefix = "svix-" if provider == "svix" else "webhook-"
        payload = samples.svix_event() if provider == "svix" else samples.standard_event()
        body = body if body is not None else samples.encode(payload)
        message_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
        signing_key = base64.b64decode(secret.removeprefix("whsec_"))
        signature = base64.b64encode(
            _hmac(signing_key, f"{message_id}.{timestamp}.".encode() + body)
        ).decode()
        return Signed(
            provider,
            WebhookRequest(
                body=body,
                headers={
                    prefix + "id": message_id,
                    prefix + "timestamp": str(timestamp),
                    prefix + "signature": f"v1,{signature}",
                },
            ),
            (prefix + "id", prefix + "timestamp", prefix + "signature"),
            message_id,
            "user.created" if provider == "svix" else "invoice.paid",
            "user_29w83sxmDNGwOuEthce5gg56FcC" if provider == "svix" else "inv_1234",
        )
    raise ValueError(provider)


# Every header each provider reads, in verify or in normalize (hostile-input tests).
READ_HEADERS: dict[str, tuple[str, ...]] = {
    "stripe": ("stripe-signature",),
    "square": ("x-square-hmacsha256-signature",),
    "mercadopago": ("x-signature", "x-request-id"),
    "shopify": (
        "x-shopify-hmac-sha256",
        "shopify-hmac-sha256",
        "x-shopify-topic",
        "x-shopify-event-id",
        "x-shopify-webhook-id",
        "x-shopify-shop-domain",
        "x-shopify-api-version",
        "x-shopify-triggered-at",
    ),
    "github": ("x-hub-signature-256", "x-github-delivery", "x-github-event", "x-github-hook-id"),
    "svix": ("svix-id", "svix-timestamp", "svix-signature"),
    "standard": ("webhook-id", "webhook-timestamp", "webhook-signature"),
}
