"""Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=...]`, HMAC-SHA256 of `{ts}:{body}`.

The key is the notification destination's secret key (`pdl_ntfset_...`), used
as text, as paddle-python-sdk does. Paddle signs the timestamp and the whole
body, so everything hookline reads comes from signed bytes: the event id is the
body's `event_id`, the type its `event_type`, the time its `occurred_at`.

Read as paddle-python-sdk 1.x reads it (paddle_billing.Notifications), except:
- the window is the receiver's SIGNATURE_TOLERANCE_SECONDS (300), not the
  SDK's 5 seconds: Paddle retries a failed delivery with a fresh signature, but
  a 5-second window turns any clock skew or a cold start into a 401;
- a second `ts` is refused (the SDK keeps the last one): never guess which one
  was signed; keys other than `ts` and `h1` are skipped (the SDK raises), so a
  scheme Paddle adds later does not break deliveries that still carry `h1`;
- the HMAC runs on the raw body bytes (the SDK decodes and re-encodes UTF-8,
  the same bytes for any body Paddle sends).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hookline.envelope import Envelope
from hookline.errors import RejectReason, SignatureRejected
from hookline.providers.base import (
    WebhookRequest,
    body_text,
    check_timestamp,
    dig,
    iso_datetime,
    json_object,
    required_header,
    text_field,
    timestamped_signatures,
)
from hookline.providers.crypto import hex_digest, matches_any

SIGNATURE_HEADER = "paddle-signature"
# Events about an adjustment (a refund, a credit) are ordered with their transaction.
ADJUSTMENT_PREFIX = "adjustment."


def _parse_signature_header(header: str) -> tuple[str, list[str]]:
    return timestamped_signatures(header, separator=";", timestamp_key="ts", signature_key="h1")


def object_id(event_type: str, data: object) -> str | None:
    """The transaction an event is about: an adjustment's `transaction_id`, else `data.id`."""
    if not isinstance(data, dict):
        return None
    if event_type.startswith(ADJUSTMENT_PREFIX):
        return text_field(data.get("transaction_id"), "data.transaction_id")
    return text_field(data.get("id"), "data.id")


class Paddle:
    name = "paddle"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        timestamp, signatures = _parse_signature_header(required_header(request, SIGNATURE_HEADER))
        signed = timestamp.encode("ascii") + b":" + request.body
        expected = [hex_digest(secret.encode("utf-8"), signed) for secret in secrets]
        if not matches_any(expected, signatures):
            raise SignatureRejected(RejectReason.MISMATCH)
        check_timestamp(timestamp, now=now, tolerance=tolerance)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        event_type = text_field(data.get("event_type"), "event_type", required=True) or ""
        return Envelope(
            provider=self.name,
            event_id=text_field(data.get("event_id"), "event_id", required=True) or "",
            event_type=event_type,
            object_id=object_id(event_type, dig(data, "data")),
            occurred_at=iso_datetime(data.get("occurred_at"), "occurred_at"),
            received_at=received_at,
            body=body_text(request),
        )
