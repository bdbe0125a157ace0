"""Lemon Squeezy: `X-Signature`, hex HMAC-SHA256 of the raw body with the signing secret.

Lemon Squeezy signs the body only (docs.lemonsqueezy.com/help/webhooks/signing-requests).
`X-Event-Name` is an unsigned copy of the body's `meta.event_name`: hookline
routes and labels by the signed one. The body carries no event id, so the
ledger identity is built from signed facts, `{event_name}:{data.id}:{updated_at}`:
a retry (the same body) or a replay is a duplicate, and each change of the
resource (a refund updates the order's `updated_at`) is a new event. The time is
the resource's `updated_at`, else its `created_at`; no signed header carries one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hookline.envelope import Envelope
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected
from hookline.providers.base import (
    WebhookRequest,
    body_text,
    dig,
    iso_datetime,
    json_object,
    required_header,
    text_field,
)
from hookline.providers.crypto import check_body_signature, hex_digest

SIGNATURE_HEADER = "x-signature"
# `order_created`, `subscription_payment_success`: no `:` in a name or an id, so the
# identity reads one way only (the time, last, may hold `:`).
EVENT_NAME = re.compile(r"[a-z_]{1,64}")
RESOURCE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
TIME_FIELDS = ("updated_at", "created_at")
# What an ISO 8601 time is written with. fromisoformat reads more (a NUL after the
# seconds), and the text goes into the identity as sent.
TIME_TEXT = re.compile(r"[0-9A-Za-z:.+-]{1,40}")


def _event_name(data: Mapping[str, Any]) -> str:
    name = dig(data, "meta", "event_name")
    if not isinstance(name, str) or not EVENT_NAME.fullmatch(name):
        raise MalformedEvent("meta.event_name is missing or not an event name")
    return name


def _resource_id(data: Mapping[str, Any]) -> str:
    value = text_field(dig(data, "data", "id"), "data.id", required=True) or ""
    if not RESOURCE_ID.fullmatch(value):
        raise MalformedEvent("data.id is not a Lemon Squeezy id")
    return value


def changed_at(data: Mapping[str, Any]) -> tuple[str, datetime]:
    """The resource's signed time of change, as sent and as a moment."""
    attributes = dig(data, "data", "attributes")
    if isinstance(attributes, Mapping):
        for name in TIME_FIELDS:
            text = attributes.get(name)
            if isinstance(text, str) and text and not TIME_TEXT.fullmatch(text):
                raise MalformedEvent(f"data.attributes.{name} is not an ISO 8601 timestamp")
            moment = iso_datetime(text, f"data.attributes.{name}")
            if moment is not None and isinstance(text, str):
                return text, moment
    raise MalformedEvent("data.attributes.updated_at and created_at are missing")


def event_id(event_name: str, resource_id: str, changed: str) -> str:
    """The ledger identity, from signed facts only."""
    return f"{event_name}:{resource_id}:{changed}"


class LemonSqueezy:
    name = "lemonsqueezy"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        signature = required_header(request, SIGNATURE_HEADER)
        if not check_body_signature(signature, secrets, request.body, hex_digest):
            raise SignatureRejected(RejectReason.MISMATCH)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        name = _event_name(data)
        resource = _resource_id(data)
        changed, moment = changed_at(data)
        return Envelope(
            provider=self.name,
            event_id=event_id(name, resource, changed),
            event_type=name,
            object_id=resource,
            occurred_at=moment,
            received_at=received_at,
            body=body_text(request),
        )
