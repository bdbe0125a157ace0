"""Razorpay: `X-Razorpay-Signature`, hex HMAC-SHA256 of the raw body with the webhook secret.

Razorpay signs the body only. `x-razorpay-event-id` travels in an unsigned
header, so it never names the event: the ledger identity is built from signed
body facts, `{event}:{entity id}:{created_at}`, where the entity is the one the
event is about (`payment.captured` → the payment, `refund.processed` → the
refund, `order.paid` → the order). A captured delivery re-sent with a fresh
event-id header is the same ledger row, a duplicate.

The ordering key is the payment: every payment, refund and order event about
one payment shares a FIFO group, so a refund is applied after its capture.
There is no signed timestamp window (Razorpay signs no time); a replay is a
duplicate by its identity, never a second event.
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
    epoch_seconds,
    json_object,
    pick_headers,
    required_header,
)
from hookline.providers.crypto import check_body_signature, hex_digest

SIGNATURE_HEADER = "x-razorpay-signature"
# Unsigned: forwarded as a label for operators, never an identity.
EVENT_ID_HEADER = "x-razorpay-event-id"
# Razorpay's event names (`payment.captured`, `payment_link.paid`, `qr_code.credited`)
# and entity ids (`pay_29QQoUBi66xm2f`, `rfnd_FP8QHiV938haTz`): no `:`, so the
# identity `{event}:{id}:{created_at}` reads one way only.
EVENT_NAME = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)+")
ENTITY_ID = re.compile(r"[A-Za-z0-9_]{1,64}")
MAX_EVENT_NAME = 128


def _event_name(data: Mapping[str, Any]) -> str:
    event = data.get("event")
    if not isinstance(event, str) or not event:
        raise MalformedEvent("event is missing or not a string")
    if len(event) > MAX_EVENT_NAME or not EVENT_NAME.fullmatch(event):
        raise MalformedEvent("event is not a Razorpay event name")
    return event


def _entity_id(data: Mapping[str, Any], name: str) -> str | None:
    """`payload.{name}.entity.id`, checked; None when the payload has no such entity."""
    value = dig(data, "payload", name, "entity", "id")
    if value is None:
        return None
    if not isinstance(value, str) or not ENTITY_ID.fullmatch(value):
        raise MalformedEvent(f"payload.{name}.entity.id is not a Razorpay id")
    return value


def subject(data: Mapping[str, Any], event: str) -> str:
    """The id of the entity the event is about: the one its name starts with.

    `refund.processed` carries the refund and its payment: the refund names it.
    An event whose own entity is absent falls back to the first entity listed in
    `contains` that has an id; none at all is no identity (400).
    """
    own = _entity_id(data, event.split(".", 1)[0])
    if own is not None:
        return own
    contains = data.get("contains")
    for name in contains if isinstance(contains, list) else []:
        if isinstance(name, str):
            found = _entity_id(data, name)
            if found is not None:
                return found
    raise MalformedEvent("the payload names no entity")


def payment_id(data: Mapping[str, Any]) -> str | None:
    """The payment the event is about (its ordering key): the payment entity, else the
    refund's `payment_id`."""
    found = _entity_id(data, "payment")
    if found is not None:
        return found
    refunded = dig(data, "payload", "refund", "entity", "payment_id")
    if refunded is None:
        return None
    if not isinstance(refunded, str) or not ENTITY_ID.fullmatch(refunded):
        raise MalformedEvent("payload.refund.entity.payment_id is not a Razorpay id")
    return refunded


def event_id(event: str, entity_id: str, created_at: int) -> str:
    """The ledger identity, from signed facts only."""
    return f"{event}:{entity_id}:{created_at}"


class Razorpay:
    name = "razorpay"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        signature = required_header(request, SIGNATURE_HEADER)
        if not check_body_signature(signature, secrets, request.body, hex_digest):
            raise SignatureRejected(RejectReason.MISMATCH)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        event = _event_name(data)
        created_at = data.get("created_at")
        occurred_at = epoch_seconds(created_at, "created_at")
        if occurred_at is None or not isinstance(created_at, int):
            raise MalformedEvent("created_at is missing")
        entity = subject(data, event)
        return Envelope(
            provider=self.name,
            event_id=event_id(event, entity, created_at),
            event_type=event,
            object_id=payment_id(data) or entity,
            occurred_at=occurred_at,
            received_at=received_at,
            headers=pick_headers(request, [EVENT_ID_HEADER]),
            body=body_text(request),
        )
