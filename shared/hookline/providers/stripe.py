"""Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 of `{t}.{body}`."""

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
    epoch_seconds,
    json_object,
    required_header,
    text_field,
    timestamped_signatures,
)
from hookline.providers.crypto import hex_digest, matches_any

SIGNATURE_HEADER = "stripe-signature"


def _parse_signature_header(header: str) -> tuple[str, list[str]]:
    return timestamped_signatures(header, separator=",", timestamp_key="t", signature_key="v1")


class Stripe:
    name = "stripe"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        timestamp, signatures = _parse_signature_header(required_header(request, SIGNATURE_HEADER))
        signed_payload = timestamp.encode("ascii") + b"." + request.body
        expected = [hex_digest(secret.encode("utf-8"), signed_payload) for secret in secrets]
        if not matches_any(expected, signatures):
            raise SignatureRejected(RejectReason.MISMATCH)
        check_timestamp(timestamp, now=now, tolerance=tolerance)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        return Envelope(
            provider=self.name,
            event_id=text_field(data.get("id"), "id", required=True) or "",
            event_type=text_field(data.get("type"), "type", required=True) or "",
            object_id=text_field(dig(data, "data", "object", "id"), "data.object.id"),
            occurred_at=epoch_seconds(data.get("created"), "created"),
            received_at=received_at,
            body=body_text(request),
        )
