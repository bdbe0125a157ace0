"""`hookline send` signs as the providers do: each official SDK accepts its signatures."""

from __future__ import annotations

import random
import time

import pytest
import standardwebhooks
import stripe
from githubkit.webhooks import verify as githubkit_verify
from hookline.simulate.events import CATALOG, SimulatedEvent, Subject, build
from hookline.simulate.signing import signature_headers
from mercadopago.webhook.validator import WebhookSignatureValidator
from square.utils.webhooks_helper import verify_signature as square_verify
from svix.webhooks import Webhook as SvixWebhook

from tests.support.signers import SECRETS

URL = "http://127.0.0.1:3000/webhooks/square"


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
