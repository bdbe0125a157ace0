"""WooCommerce: `X-WC-Webhook-Signature`, base64 HMAC-SHA256 of the raw body.

As `WC_Webhook::generate_signature` makes it (woocommerce/woocommerce,
plugins/woocommerce/includes/class-wc-webhook.php): `base64_encode(hash_hmac(
'sha256', $payload, wp_specialchars_decode($secret, ENT_QUOTES), true))`, so the
secret configured here is the one typed into WooCommerce, entities decoded.

Only the body is signed. The topic, resource, event, webhook id, delivery id and
source travel in unsigned `X-WC-Webhook-*` headers: the topic labels an event,
nothing else is trusted. WooCommerce is the shop's order system and its body is
the REST order itself, so the identity is built from it:
`order:{id}:{date_modified_gmt}:{status}:{number of refunds}` (`resource:` for a
body that is not an order). The status and
the refunds are in it because WooCommerce keeps whole seconds: two saves in one
second (`pending` then `processing`, or a second refund) are two events, while a
re-sent delivery (same body, new delivery id) is a duplicate.

The save-time ping (`webhook_id=N`, form-encoded, no signature header) is refused
with 401 like any unsigned request (docs/providers.md says what that means).
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
    iso_datetime,
    json_object,
    pick_headers,
    required_header,
    text_field,
)
from hookline.providers.crypto import base64_digest, check_body_signature

SIGNATURE_HEADER = "x-wc-webhook-signature"
TOPIC_HEADER = "x-wc-webhook-topic"
# Unsigned labels, forwarded for operators.
FORWARDED = (
    TOPIC_HEADER,
    "x-wc-webhook-delivery-id",
    "x-wc-webhook-id",
    "x-wc-webhook-resource",
    "x-wc-webhook-event",
    "x-wc-webhook-source",
)
# `order.created`, `order.updated`, `action.woocommerce_...`: a label, checked for form.
TOPIC = re.compile(r"[a-z0-9_]+\.[a-z0-9_.-]+")
MAX_TOPIC = 128
# Order status slugs (`pending`, `on-hold`, a plugin's own): no `:`.
STATUS = re.compile(r"[a-z0-9_-]{1,64}")
# What WooCommerce writes a time with (`2026-11-24T09:02:36`). fromisoformat reads
# more (a NUL after the seconds), and the text goes into the identity as sent.
TIME_TEXT = re.compile(r"[0-9A-Za-z:.+-]{1,40}")
# The largest id WordPress stores (bigint unsigned is wider, but no shop gets near).
MAX_ID = 2**63 - 1


def order_number(data: Mapping[str, Any]) -> int:
    value = data.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise MalformedEvent("id is missing or not a positive integer")
    return value


def modified_at(data: Mapping[str, Any]) -> tuple[str, datetime]:
    """`date_modified_gmt` as sent and as a moment (UTC: WooCommerce writes no offset)."""
    text = data.get("date_modified_gmt")
    if isinstance(text, str) and text and not TIME_TEXT.fullmatch(text):
        raise MalformedEvent("date_modified_gmt is not an ISO 8601 timestamp")
    moment = iso_datetime(text, "date_modified_gmt")
    if moment is None or not isinstance(text, str):
        raise MalformedEvent("date_modified_gmt is missing")
    return text, moment


def order_status(data: Mapping[str, Any]) -> str:
    status = data.get("status")
    if not isinstance(status, str) or not STATUS.fullmatch(status):
        raise MalformedEvent("status is missing or not a status")
    return status


def refund_count(data: Mapping[str, Any]) -> int:
    refunds = data.get("refunds")
    if refunds is None:
        return 0
    if not isinstance(refunds, list):
        raise MalformedEvent("refunds is not a list")
    return len(refunds)


def resource_kind(data: Mapping[str, Any]) -> str:
    """`order` for an order body (it has an order key); another resource's body (a
    product sent under a mislabelled topic) never shares an order's identity."""
    return "order" if "order_key" in data else "resource"


def event_id(kind: str, number: int, modified: str, status: str, refunds: int) -> str:
    """The ledger identity, from signed facts only."""
    return f"{kind}:{number}:{modified}:{status}:{refunds}"


def _topic(request: WebhookRequest) -> str:
    topic = text_field(request.header(TOPIC_HEADER), TOPIC_HEADER, required=True) or ""
    if len(topic) > MAX_TOPIC or not TOPIC.fullmatch(topic):
        raise MalformedEvent(f"{TOPIC_HEADER} is not a topic")
    return topic


class WooCommerce:
    name = "woocommerce"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        signature = required_header(request, SIGNATURE_HEADER)
        if not check_body_signature(signature, secrets, request.body, base64_digest):
            raise SignatureRejected(RejectReason.MISMATCH)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        order = order_number(data)
        modified, moment = modified_at(data)
        return Envelope(
            provider=self.name,
            event_id=event_id(
                resource_kind(data), order, modified, order_status(data), refund_count(data)
            ),
            # Unsigned: a label; the handler follows the body whatever it says.
            event_type=_topic(request),
            object_id=str(order),
            occurred_at=moment,
            received_at=received_at,
            headers=pick_headers(request, FORWARDED),
            body=body_text(request),
        )
