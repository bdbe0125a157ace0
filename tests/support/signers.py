"""Sign requests the way each provider does, written from the providers' docs.

Deliberately independent of hookline.providers: a test that signs with the
code under test proves nothing. The official SDKs check these in tests/contract.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote

from hookline.envelope import Envelope
from hookline.errors import RejectReason, SignatureRejected
from hookline.providers import Provider, WebhookRequest

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
    "paddle": ("pdl_ntfset_01hv8x2a_test_current_fake", "pdl_ntfset_01hv8x1z_test_previous_fake"),
    # Adyen's HMAC key is hex, as the Customer Area shows it: these spell out their fakeness.
    "adyen": (
        b"adyen-test-hmac-key-fake-current".hex().upper(),
        b"adyen-test-hmac-key-fake-previous".hex().upper(),
    ),
    "esewa": ("esewa-test-secret-fake-current", "esewa-test-secret-fake-previous"),
    # Khalti and Mollie sign nothing: their entries are the API keys the consumer confirms with.
    "khalti": ("khalti-test-secret-key-fake-current", "khalti-test-secret-key-fake-previous"),
    "mollie": ("test_mollie_api_key_fake_current", "test_mollie_api_key_fake_previous"),
    "razorpay": ("rzp-test-webhook-secret-fake", "rzp-previous-webhook-secret-fake"),
    "lemonsqueezy": ("ls-test-signing-secret-fake", "ls-previous-signing-secret-fake"),
    "woocommerce": ("wc-test-webhook-secret-fake", "wc-previous-webhook-secret-fake"),
}


# What an attacker without the secret signs with: valid in form, wrong in value.
def _forged(provider: str, current: str) -> str:
    if current.startswith("whsec_") and provider in ("svix", "standard"):
        return "whsec_" + base64.b64encode(b"attacker-key-" + provider.encode()).decode()
    if provider == "adyen":
        return (b"attacker-key-" + provider.encode()).hex().upper()
    return f"attacker-secret-{provider}"


FORGED_SECRETS: dict[str, str] = {
    provider: _forged(provider, current) for provider, (current, _previous) in SECRETS.items()
}


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def with_headers(request: WebhookRequest, **changes: str | None) -> WebhookRequest:
    """`request` with headers set (`x_name="v"` sets `x-name`) or removed (`None`)."""
    headers = dict(request.headers)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = value
    return replace(request, headers=headers)


@dataclass(frozen=True)
class ProviderCase:
    """One provider's verify and normalize as a single-provider test calls them: at NOW,
    with its current secret unless told otherwise, the receiver's 300 s tolerance."""

    provider: Provider
    secrets: tuple[str, ...]

    def verify(self, request: WebhookRequest, secrets: tuple[str, ...] | None = None) -> None:
        self.provider.verify(request, secrets or self.secrets[:1], now=NOW, tolerance=300)

    def rejected(
        self, request: WebhookRequest, secrets: tuple[str, ...] | None = None
    ) -> RejectReason:
        """The reason `request` is refused (the test fails if it verifies)."""
        try:
            self.verify(request, secrets)
        except SignatureRejected as refused:
            return refused.reason
        raise AssertionError("the request verified")

    def normalize(self, request: WebhookRequest) -> Envelope:
        return self.provider.normalize(request, received_at=datetime.fromtimestamp(NOW, UTC))


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
        return with_headers(self.request, **changes)

    # What the queued envelope's body is, where it is not the request body: eSewa's
    # decoded document, Khalti's and Mollie's forwarded form as JSON.
    envelope_body: str | None = None

    def with_body(self, body: bytes) -> WebhookRequest:
        return replace(self.request, body=body)

    @property
    def queued_body(self) -> str:
        return self.envelope_body if self.envelope_body is not None else self.request.body.decode()

    @property
    def document(self) -> bytes:
        """The JSON document the provider signed: the body, or what eSewa's body carries."""
        return esewa_document(self.request.body) if self.provider == "esewa" else self.request.body

    def with_document(self, document: bytes) -> WebhookRequest:
        """The request carrying `document` as this provider carries it, signature untouched."""
        return self.with_body(carry(self.provider, document))


# ---------------------------------------------------------------- signed inside the body

ADYEN_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)


def adyen_signed_body(body: bytes | None, secret: str) -> bytes:
    """Adyen's notification with its hmacSignature, or `body` as given if it holds none.

    A body the signer cannot read (too deep, a number no parser holds) is returned
    as given: whatever signature it already carries stays, as a holder of the key
    who signed the readable part would leave it.
    """
    try:
        document = json.loads(body) if body is not None else samples.adyen_notification()
        item = document["notificationItems"][0]["NotificationRequestItem"]
        fields = {**item, **item.get("amount", {})}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        return body or b""  # not a notification: nothing to sign
    signing = ":".join(str(fields.get(name, "")) for name in ADYEN_FIELDS)
    signed = copy.deepcopy(document)
    entry = signed["notificationItems"][0]["NotificationRequestItem"]
    entry.setdefault("additionalData", {})["hmacSignature"] = base64.b64encode(
        _hmac(bytes.fromhex(secret), signing.encode("utf-8", "surrogatepass"))
    ).decode()
    return json.dumps(signed).encode("utf-8", "surrogatepass")


class _Token(str):
    """A JSON number or constant as written: eSewa signs `1000.0`, not 1000."""


_ESEWA_SIGNATURE = re.compile(r'("signature"\s*:\s*)"[^"]*"')


def esewa_signed_document(document: bytes, secret: str) -> bytes:
    """eSewa's document with `signature` set over its signed_field_names (developer.esewa.com.np).

    Each value as written in the JSON text (a string's value, a number's token).
    A document the signer cannot read is returned as given, its signature as it was.
    """
    try:
        text = document.decode("utf-8")
        data = json.loads(text, parse_int=_Token, parse_float=_Token, parse_constant=_Token)
        names = data["signed_field_names"].split(",")
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return document
    literal = {True: "true", False: "false", None: "null"}
    values = {
        name: value if isinstance(value, str) else literal.get(value, "")
        for name, value in data.items()
        if not isinstance(value, dict | list)
    }
    message = ",".join(f"{name}={values.get(name, '')}" for name in names)
    signature = base64.b64encode(_hmac(secret.encode(), message.encode())).decode()
    if "signature" in data:
        text = _ESEWA_SIGNATURE.sub(lambda m: f'{m.group(1)}"{signature}"', text, count=1)
    else:
        text = text.rstrip()[:-1] + f',"signature":"{signature}"}}'
    return text.encode("utf-8", "surrogatepass")


def carry(provider: str, document: bytes) -> bytes:
    """The request body carrying `document`: eSewa's shop forwards `data=<base64>`."""
    if provider != "esewa":
        return document
    return b"data=" + quote(base64.b64encode(document).decode(), safe="").encode()


def esewa_document(body: bytes) -> bytes:
    return base64.b64decode(unquote(body.decode().removeprefix("data=")))


def _received(timestamp: int) -> str:
    """Khalti's and Mollie's per-delivery identity suffix, received at `timestamp`."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode().strip(), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return {}


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
    if provider == "paddle":
        body = body if body is not None else samples.encode(samples.paddle_event())
        signature = _hmac(key, f"{timestamp}:".encode() + body).hex()
        return Signed(
            provider,
            WebhookRequest(
                body=body, headers={"paddle-signature": f"ts={timestamp};h1={signature}"}
            ),
            ("paddle-signature",),
            "evt_01hv8x2a6qv0fq0ny6s3q2bnqe",
            "transaction.completed",
            "txn_01hv8wptq8987qeep44cyrewp9",
        )
    if provider == "adyen":
        return Signed(
            provider,
            WebhookRequest(
                body=adyen_signed_body(body, secret),
                headers={"content-type": "application/json"},
            ),
            (),  # signed inside the body: additionalData.hmacSignature
            "AUTHORISATION:7914073381342284:true",
            "AUTHORISATION",
            "7914073381342284",
        )
    if provider == "esewa":
        document = body if body is not None else samples.ESEWA_DOCUMENT.encode()
        signed_document = esewa_signed_document(document, secret)
        return Signed(
            provider,
            WebhookRequest(
                body=carry(provider, signed_document),
                headers={"content-type": "application/x-www-form-urlencoded"},
            ),
            (),  # signed inside the document: its `signature` member
            "EPAYTEST:250610-162413:000AWEO",
            "payment",
            "250610-162413",
            envelope_body=signed_document.decode("utf-8", "replace"),
        )
    if provider in ("khalti", "mollie"):
        # Nothing is signed: the shop (Khalti) or Mollie posts a form naming the payment.
        default = samples.KHALTI_CALLBACK if provider == "khalti" else samples.MOLLIE_FORM
        body = body if body is not None else default.encode()
        fields = _form(body)
        object_id = fields.get("pidx" if provider == "khalti" else "id", "")
        queued = fields if provider == "khalti" else {"id": object_id}
        return Signed(
            provider,
            WebhookRequest(
                body=body, headers={"content-type": "application/x-www-form-urlencoded"}
            ),
            (),
            # Each delivery is its own event, named by when it was received.
            f"{object_id}:{_received(timestamp)}",
            "payment",
            object_id,
            envelope_body=json.dumps(queued, ensure_ascii=False),
        )
    if provider == "razorpay":
        body = body if body is not None else samples.encode(samples.razorpay_captured())
        return Signed(
            provider,
            WebhookRequest(
                body=body,
                headers={
                    "x-razorpay-signature": _hmac(key, body).hex(),
                    "x-razorpay-event-id": "HBV2dW9ZLlDg5H",
                },
            ),
            ("x-razorpay-signature",),
            # The event-id header is unsigned: the identity is built from the body.
            "payment.captured:pay_DESlfW9H8K9uqM:1759999990",
            "payment.captured",
            "pay_DESlfW9H8K9uqM",
        )
    if provider == "lemonsqueezy":
        body = body if body is not None else samples.encode(samples.lemonsqueezy_order())
        return Signed(
            provider,
            WebhookRequest(
                body=body,
                headers={"x-signature": _hmac(key, body).hex(), "x-event-name": "order_created"},
            ),
            ("x-signature",),
            "order_created:1:2021-08-11T13:47:29.000000Z",
            "order_created",
            "1",
        )
    if provider == "woocommerce":
        body = body if body is not None else samples.encode(samples.woocommerce_order())
        return Signed(
            provider,
            WebhookRequest(
                body=body,
                headers={
                    "x-wc-webhook-signature": base64.b64encode(_hmac(key, body)).decode(),
                    "x-wc-webhook-topic": "order.updated",
                    "x-wc-webhook-resource": "order",
                    "x-wc-webhook-event": "updated",
                    "x-wc-webhook-source": "https://shop.example.com/",
                    "x-wc-webhook-id": "17",
                    "x-wc-webhook-delivery-id": "2c4b0e2d4e8b0f2fb3fa01b1c4b5d2a9",
                },
            ),
            ("x-wc-webhook-signature",),
            "order:727:2017-03-22T19:28:08:processing:0",
            "order.updated",
            "727",
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
    "paddle": ("paddle-signature",),
    # Adyen and eSewa sign inside the body; Khalti and Mollie sign nothing: none reads a header.
    "adyen": (),
    "esewa": (),
    "khalti": (),
    "mollie": (),
    # x-razorpay-event-id is unsigned but forwarded to operators, so read.
    "razorpay": ("x-razorpay-signature", "x-razorpay-event-id"),
    # x-event-name is an unsigned copy of meta.event_name: never read.
    "lemonsqueezy": ("x-signature",),
    "woocommerce": (
        "x-wc-webhook-signature",
        "x-wc-webhook-topic",
        "x-wc-webhook-delivery-id",
        "x-wc-webhook-id",
        "x-wc-webhook-resource",
        "x-wc-webhook-event",
        "x-wc-webhook-source",
    ),
}
