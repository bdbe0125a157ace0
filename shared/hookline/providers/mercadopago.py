"""Mercado Pago: `x-signature: ts=<ts>,v1=<hex>`, HMAC-SHA256 of a manifest.

The manifest is `id:{data.id};request-id:{x-request-id};ts:{ts};` where data.id
comes from the query string and absent parts are left out. Only those three are
signed; the body is not. So:

- identity: the event id is built from the signed parts (`event_id`), never from
  the body's `id`, so one signature replayed with any number of other bodies is
  one event, one ledger row and at most one API fetch;
- object: the payment is the signed data.id; a body naming another is refused,
  and the consumer fetches the payment from Mercado Pago's API rather than
  trusting the body (the body's `type` only routes, `id` is never used);
- time: `ts` must be within its own tolerance (MERCADOPAGO_TOLERANCE_SECONDS, a
  day by default), longer than the other providers' because nothing says Mercado
  Pago re-signs a retry: it retries for days, and a receiver outage longer than a
  short window would otherwise turn every retry into a 401 and lose the
  notification. The identity holds no time, so a replay inside the window is a
  duplicate, never a second event. The official SDKs (Python `mercadopago`
  3.6.0, sdk-nodejs at 4339894) check no tolerance unless asked
  (`tolerance_seconds`), and then read `ts` as seconds; their own test vectors
  carry milliseconds, so a `ts` of 13 digits or more is read as milliseconds;
- unambiguous manifest: data.id and x-request-id may hold letters, digits, `-`
  and `_` only. A `;` or `:` would let one signed manifest read as another
  (`data.id=1;request-id:2` with no request id signs like data.id 1, request id 2).
  The SDKs take any text; Mercado Pago's ids are alphanumeric (Point's are UUIDs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from hookline.envelope import Envelope
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected
from hookline.providers.base import (
    MAX_TIMESTAMP_DIGITS,
    ApiRead,
    ProviderApi,
    WebhookRequest,
    body_text,
    dig,
    json_object,
    pick_headers,
    required_header,
    text_field,
)
from hookline.providers.crypto import hex_digest, matches_any

SIGNATURE_HEADER = "x-signature"
REQUEST_ID_HEADER = "x-request-id"
DATA_ID_PARAM = "data.id"
# What a signed id may hold: no `;` or `:`, so the manifest reads one way only.
SIGNED_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# The payments API the consumer applies from; the access token is the secret's
# `mercadopago_access_token`.
API = ProviderApi("mercadopago", "https://api.mercadopago.com", "mercadopago_access_token")
# What a Mercado Pago payment id looks like, checked again before it goes in a URL.
_PAYMENT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
# A `ts` this large is milliseconds (as seconds it would be after the year 33000).
MILLISECONDS_FROM = 10**12


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


def _signed_id(value: str | None) -> str | None:
    """A manifest part as the SDK reads it (trimmed, blank is absent), if it is unambiguous."""
    present = value.strip() or None if value is not None else None
    if present is not None and not SIGNED_ID.fullmatch(present):
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    return present


def manifest(data_id: str | None, request_id: str | None, timestamp: str) -> str:
    parts = []
    if data_id:
        parts.append(f"id:{data_id}")
    if request_id:
        parts.append(f"request-id:{request_id}")
    parts.append(f"ts:{timestamp}")
    return ";".join(parts) + ";"


def signed_moment(timestamp: str) -> float:
    """`ts` in seconds since the epoch, whether Mercado Pago sent seconds or milliseconds."""
    value = int(timestamp)
    return value / 1000 if value >= MILLISECONDS_FROM else float(value)


def _within_tolerance(timestamp: str, *, now: float, tolerance: int) -> bool:
    if len(timestamp) > MAX_TIMESTAMP_DIGITS:
        return False
    return abs(now - signed_moment(timestamp)) <= tolerance


def _occurred_at(timestamp: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(signed_moment(timestamp), UTC)
    except (OverflowError, OSError, ValueError):
        return None  # only a request that never verified gets here


def event_id(data_id: str, request_id: str | None, timestamp: str) -> str:
    """The event's identity from signed parts only: `{data.id}:{x-request-id}`.

    The request id names the notification; without one, the signed `ts` does
    (`{data.id}:ts:{ts}`). Neither id may hold `:`, so the two forms never meet.
    `ts` is left out when there is a request id: a retry that keeps the request
    id is the same notification.
    """
    return f"{data_id}:{request_id}" if request_id else f"{data_id}:ts:{timestamp}"


class MercadoPago:
    name = "mercadopago"

    def __init__(self, tolerance_seconds: int | None = None) -> None:
        # None: the tolerance every provider is given (SIGNATURE_TOLERANCE_SECONDS).
        self.tolerance_seconds = tolerance_seconds

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        timestamp, signature = _parse_signature_header(required_header(request, SIGNATURE_HEADER))
        signed = manifest(
            _signed_id(request.query.get(DATA_ID_PARAM)),
            _signed_id(request.header(REQUEST_ID_HEADER)),
            timestamp,
        ).encode("utf-8")
        expected = [hex_digest(secret.encode("utf-8"), signed) for secret in secrets]
        if not matches_any(expected, [signature]):
            raise SignatureRejected(RejectReason.MISMATCH)
        window = self.tolerance_seconds or tolerance
        if not _within_tolerance(timestamp, now=now, tolerance=window):
            raise SignatureRejected(RejectReason.TIMESTAMP_OUT_OF_TOLERANCE)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        signed_id = _signed_id(request.query.get(DATA_ID_PARAM))
        if signed_id is None:
            # Nothing signed names the object, so nothing can give the event an identity.
            raise MalformedEvent("the notification has no signed data.id")
        request_id = _signed_id(request.header(REQUEST_ID_HEADER))
        timestamp, _ = _parse_signature_header(required_header(request, SIGNATURE_HEADER))
        body_id = text_field(dig(data, "data", "id"), "data.id")
        # The body is unsigned: its object id must be the one the signature covers.
        if body_id is not None and body_id != signed_id:
            raise SignatureRejected(RejectReason.UNSIGNED_FIELD)
        return Envelope(
            provider=self.name,
            event_id=event_id(signed_id, request_id, timestamp),
            # Unsigned: it routes to a handler, which trusts only the signed id.
            event_type=text_field(data.get("type"), "type", required=True) or "",
            object_id=signed_id,
            occurred_at=_occurred_at(timestamp),
            received_at=received_at,
            headers=pick_headers(request, [REQUEST_ID_HEADER]),
            body=body_text(request),
        )


def payment_read(payment_id: str) -> ApiRead:
    """GET /v1/payments/{id}: the payment a notification names."""
    if not _PAYMENT_ID.fullmatch(payment_id):
        raise MalformedEvent("the Mercado Pago payment id is not an id")
    return ApiRead(("v1", "payments", payment_id))
