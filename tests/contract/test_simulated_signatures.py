"""`hookline send` signs as the providers do: each official SDK accepts its signatures."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field

import Adyen.util as adyen_util
import pytest
import razorpay
import standardwebhooks
import stripe
from githubkit.webhooks import verify as githubkit_verify
from hookline.simulate.events import CATALOG, SimulatedEvent, Subject, build
from hookline.simulate.signing import signature_headers, signed_body
from mercadopago.webhook.validator import WebhookSignatureValidator
from paddle_billing.Notifications import Secret as PaddleSecret
from paddle_billing.Notifications import Verifier
from square.utils.webhooks_helper import verify_signature as square_verify
from svix.webhooks import Webhook as SvixWebhook

from tests.support.signers import SECRETS

URL = "http://127.0.0.1:3000/webhooks/square"
# No official SDK verifies these: tests/contract/test_{esewa,lemonsqueezy,woocommerce}_docs.py
# hold hookline to their documented examples instead; Khalti and Mollie sign nothing.
NO_SDK = ("esewa", "lemonsqueezy", "woocommerce", "khalti", "mollie")


@dataclass
class SdkRequest:
    """The shape paddle_billing.Notifications.Requests.Request reads."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def simulated(provider: str) -> tuple[SimulatedEvent, dict[str, str], str]:
    rng = random.Random(11)
    kind = next(iter(CATALOG[provider]))
    event = build(provider, kind, Subject.new(rng), rng)
    secret = SECRETS[provider][0]
    signed = signature_headers(event, secret, url=URL, timestamp=int(time.time()))
    return event, {**event.headers, **signed}, secret


def test_stripe() -> None:
    event, headers, secret = simulated("stripe")
    stripe.WebhookSignature.verify_header(
        event.body.decode(), headers["stripe-signature"], secret, tolerance=300
    )


def test_square() -> None:
    event, headers, secret = simulated("square")
    assert square_verify(
        request_body=event.body.decode(),
        signature_header=headers["x-square-hmacsha256-signature"],
        signature_key=secret,
        notification_url=URL,
    )


def test_mercadopago() -> None:
    event, headers, secret = simulated("mercadopago")
    # The SDK raises on a mismatch.
    WebhookSignatureValidator.validate(
        headers["x-signature"], headers["x-request-id"], event.query["data.id"], secret
    )


def test_github() -> None:
    event, headers, secret = simulated("github")
    assert githubkit_verify(secret, event.body, headers["x-hub-signature-256"])


@pytest.mark.parametrize("provider", ["svix", "standard"])
def test_svix_and_standard(provider: str) -> None:
    event, headers, secret = simulated(provider)
    if provider == "svix":
        SvixWebhook(secret).verify(event.body, headers)
    else:
        standardwebhooks.Webhook(secret).verify(event.body, headers)


def test_paddle() -> None:
    event, headers, secret = simulated("paddle")
    request = SdkRequest(event.body, {"Paddle-Signature": headers["paddle-signature"]})
    assert Verifier().verify(request, [PaddleSecret(secret)])


def test_adyen() -> None:
    event, _, secret = simulated("adyen")
    # Adyen signs inside the body: the simulator's signed_body carries hmacSignature.
    document = json.loads(signed_body(event, secret))
    assert adyen_util.is_valid_hmac_notification(document, secret)


def test_razorpay() -> None:
    event, headers, secret = simulated("razorpay")
    assert razorpay.Utility().verify_webhook_signature(
        event.body.decode(), headers["x-razorpay-signature"], secret
    )
