"""Shopify: `X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the body."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hookline.envelope import Envelope
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected
from hookline.providers.base import (
    WebhookRequest,
    body_text,
    iso_datetime,
    json_object,
    pick_headers,
    required_header,
    text_field,
)
from hookline.providers.crypto import base64_digest, matches_any

SIGNATURE_HEADER = "x-shopify-hmac-sha256"
FORWARDED_HEADERS = (
    "x-shopify-topic",
    "x-shopify-shop-domain",
    "x-shopify-api-version",
    "x-shopify-webhook-id",
    "x-shopify-triggered-at",
)


class Shopify:
    name = "shopify"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        signature = required_header(request, SIGNATURE_HEADER)
        expected = [base64_digest(secret.encode("utf-8"), request.body) for secret in secrets]
        if not matches_any(expected, [signature]):
            raise SignatureRejected(RejectReason.MISMATCH)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        # The event id names the event; the webhook id names one delivery attempt
        # and is the fallback for shops on API versions without event ids.
        event_id = request.header("x-shopify-event-id") or request.header("x-shopify-webhook-id")
        topic = request.header("x-shopify-topic")
        if not event_id:
            raise MalformedEvent("X-Shopify-Event-Id and X-Shopify-Webhook-Id are missing")
        if not topic:
            raise MalformedEvent("X-Shopify-Topic is missing")
        return Envelope(
            provider=self.name,
            event_id=event_id,
            event_type=topic,
            object_id=text_field(data.get("id"), "id"),
            occurred_at=iso_datetime(
                request.header("x-shopify-triggered-at"), "X-Shopify-Triggered-At"
            ),
            received_at=received_at,
            headers=pick_headers(request, FORWARDED_HEADERS),
            body=body_text(request),
        )
