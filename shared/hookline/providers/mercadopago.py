"""Mercado Pago: `x-signature: ts=<ts>,v1=<hex>`, HMAC-SHA256 of a manifest.

The manifest is `id:{data.id};request-id:{x-request-id};ts:{ts};` where data.id
comes from the query string and absent parts are left out. The body is not
signed: only the object id is, so the receiver refuses a body whose data.id is
not the signed one, and the consumer fetches the object from Mercado Pago's API
rather than trusting the body.

No timestamp tolerance: Mercado Pago documents `ts` inconsistently (seconds in
some places, milliseconds in others) and its own SDK checks none by default. A
replayed notification only makes the consumer fetch the object's current state
again, which is harmless.
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
    pick_headers,
    required_header,
    text_field,
)
from hookline.providers.crypto import hex_digest, matches_any

SIGNATURE_HEADER = "x-signature"
REQUEST_ID_HEADER = "x-request-id"
DATA_ID_PARAM = "data.id"


def _parse_signature_header(header: str) -> tuple[str, str]:
    parts: dict[str, str] = {}
    for item in header.split(","):
        key, separator, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not separator or not key or not value:
            raise SignatureRejected(RejectReason.MALFORMED_HEADER)
        if key in parts:
            raise SignatureRejected(RejectReason.MALFORMED_HEADER)
        parts[key] = value
    timestamp, signature = parts.get("ts"), parts.get("v1")
    if timestamp is None or signature is None:
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    if not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    return timestamp, signature


def _present(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def manifest(data_id: str | None, request_id: str | None, timestamp: str) -> str:
    parts = []
    if data_id:
        parts.append(f"id:{data_id}")
    if request_id:
        parts.append(f"request-id:{request_id}")
    parts.append(f"ts:{timestamp}")
    return ";".join(parts) + ";"


class MercadoPago:
    name = "mercadopago"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        timestamp, signature = _parse_signature_header(required_header(request, SIGNATURE_HEADER))
        signed = manifest(
            _present(request.query.get(DATA_ID_PARAM)),
            _present(request.header(REQUEST_ID_HEADER)),
            timestamp,
        ).encode("utf-8")
        expected = [hex_digest(secret.encode("utf-8"), signed) for secret in secrets]
        if not matches_any(expected, [signature]):
            raise SignatureRejected(RejectReason.MISMATCH)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        signed_id = _present(request.query.get(DATA_ID_PARAM))
        body_id = text_field(dig(data, "data", "id"), "data.id")
        # The body is unsigned: its object id must be the one the signature covers.
        if body_id is not None and body_id != signed_id:
            raise SignatureRejected(RejectReason.UNSIGNED_FIELD)
        return Envelope(
            provider=self.name,
            event_id=text_field(data.get("id"), "id", required=True) or "",
            event_type=text_field(data.get("type"), "type", required=True) or "",
            object_id=signed_id,
            occurred_at=iso_datetime(data.get("date_created"), "date_created"),
            received_at=received_at,
            headers=pick_headers(request, [REQUEST_ID_HEADER]),
            body=body_text(request),
        )
