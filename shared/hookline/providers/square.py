"""Square: `x-square-hmacsha256-signature`, base64 HMAC-SHA256 of notification URL + body.

The URL is part of what Square signs, so it must be the one registered in the
Square Developer Console: SQUARE_NOTIFICATION_URL when set (custom domains,
proxies), otherwise the URL this request arrived on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hookline.envelope import Envelope
from hookline.errors import RejectReason, SignatureRejected
from hookline.providers.base import (
    WebhookRequest,
    body_text,
    dig,
    iso_datetime,
    json_object,
    required_header,
    text_field,
)
from hookline.providers.crypto import base64_digest, matches_any

SIGNATURE_HEADER = "x-square-hmacsha256-signature"


class Square:
    name = "square"

    def __init__(self, notification_url: str | None = None) -> None:
        self.notification_url = notification_url

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        signature = required_header(request, SIGNATURE_HEADER)
        url = self.notification_url or request.url
        if not url:
            raise SignatureRejected(RejectReason.MISMATCH)
        signed = url.encode("utf-8") + request.body
        expected = [base64_digest(secret.encode("utf-8"), signed) for secret in secrets]
        if not matches_any(expected, [signature]):
            raise SignatureRejected(RejectReason.MISMATCH)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        return Envelope(
            provider=self.name,
            event_id=text_field(data.get("event_id"), "event_id", required=True) or "",
            event_type=text_field(data.get("type"), "type", required=True) or "",
            object_id=text_field(dig(data, "data", "id"), "data.id"),
            occurred_at=iso_datetime(data.get("created_at"), "created_at"),
            received_at=received_at,
            headers={"square-merchant-id": str(data["merchant_id"])}
            if isinstance(data.get("merchant_id"), str)
            else {},
            body=body_text(request),
        )
