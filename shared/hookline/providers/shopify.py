"""Shopify: base64 HMAC-SHA256 of the body, in `X-Shopify-Hmac-Sha256`.

Shopify signs the body only. The topic, the event and webhook ids and the
trigger time travel in unsigned headers: they label an event (its ledger id is
`X-Shopify-Event-Id`, else `X-Shopify-Webhook-Id`, as DESIGN.md says) but never
decide what it does. The event's time comes from the signed body (`event_time`),
and so does every state change (hookline.handlers.shopify). A captured delivery
re-sent with another topic and a fresh id is a new ledger row that changes nothing.

Two header families, read the way @shopify/shopify-api does (shopify-app-js,
lib/webhooks/validate.ts): webhooks (`X-Shopify-*`) and the newer events
(`shopify-*`: lower case, no `x-`). The family is the one whose HMAC header is
present, the newer first, and every other header is read from that family only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

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
from hookline.providers.crypto import base64_digest, check_body_signature

WEBHOOKS_PREFIX = "x-shopify-"
EVENTS_PREFIX = "shopify-"
HMAC = "hmac-sha256"
FORWARDED = ("topic", "shop-domain", "api-version", "webhook-id", "triggered-at")
# When a body says it last changed: an order's `updated_at`, else its `created_at`;
# a refund's `created_at`, else its `processed_at`.
TIME_FIELDS = ("updated_at", "created_at", "processed_at")


def header_prefix(request: WebhookRequest) -> str:
    """The header family this delivery uses (the one carrying the HMAC)."""
    events_hmac = request.header(EVENTS_PREFIX + HMAC)
    return EVENTS_PREFIX if events_hmac is not None and events_hmac.strip() else WEBHOOKS_PREFIX


def event_time(body: Mapping[str, Any]) -> datetime | None:
    """The signed time of what the body describes (never `X-Shopify-Triggered-At`)."""
    for name in TIME_FIELDS:
        moment = iso_datetime(body.get(name), name)
        if moment is not None:
            return moment
    return None


class Shopify:
    name = "shopify"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        signature = required_header(request, header_prefix(request) + HMAC)
        if not check_body_signature(signature, secrets, request.body, base64_digest):
            raise SignatureRejected(RejectReason.MISMATCH)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        prefix = header_prefix(request)
        # The event id names the event; the webhook id names one delivery attempt
        # and is the fallback for shops on API versions without event ids. Both
        # are unsigned labels: the ledger keys on them, nothing else trusts them.
        event_id = request.header(prefix + "event-id") or request.header(prefix + "webhook-id")
        topic = request.header(prefix + "topic")
        if not event_id:
            raise MalformedEvent(f"{prefix}event-id and {prefix}webhook-id are missing")
        if not topic:
            raise MalformedEvent(f"{prefix}topic is missing")
        return Envelope(
            provider=self.name,
            event_id=event_id,
            event_type=topic,
            object_id=text_field(data.get("id"), "id"),
            occurred_at=event_time(data),
            received_at=received_at,
            headers=pick_headers(request, [prefix + name for name in FORWARDED]),
            body=body_text(request),
        )
