"""Svix (Clerk and other Svix senders) and Standard Webhooks: one scheme, two header prefixes.

`{prefix}signature` is a space-separated list of `v1,<base64>`; each is
HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with the base64 part of a
`whsec_...` secret.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime

from hookline.envelope import Envelope
from hookline.errors import ConfigurationError, MalformedEvent, RejectReason, SignatureRejected
from hookline.providers.base import (
    WebhookRequest,
    body_text,
    check_timestamp,
    dig,
    epoch_seconds,
    iso_datetime,
    json_object,
    required_header,
    text_field,
)
from hookline.providers.crypto import base64_digest, matches_any

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# Epoch values above this are milliseconds (Clerk sends `timestamp` in ms).
_MILLISECONDS_THRESHOLD = 100_000_000_000


def signing_key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        # A configuration mistake, not the sender's: fail loudly, never accept.
        raise ConfigurationError("a webhook secret is not whsec_ followed by base64") from None


def _signatures(header: str) -> list[str]:
    signatures: list[str] = []
    for entry in header.split(" "):
        version, separator, signature = entry.partition(",")
        if not separator:
            raise SignatureRejected(RejectReason.MALFORMED_HEADER)
        if version == "v1":
            signatures.append(signature)
        # v1a (asymmetric) and unknown versions are skipped, as the official libraries do.
    if not signatures:
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    return signatures


def _occurred_at(value: object) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > _MILLISECONDS_THRESHOLD:
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, int):
        return epoch_seconds(value, "timestamp")
    return iso_datetime(value, "timestamp")


class Svix:
    name = "svix"
    header_prefix = "svix-"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        message_id = required_header(request, self.header_prefix + "id")
        timestamp = required_header(request, self.header_prefix + "timestamp")
        signatures = _signatures(required_header(request, self.header_prefix + "signature"))
        if not timestamp.isascii() or not timestamp.isdigit():
            raise SignatureRejected(RejectReason.MALFORMED_HEADER)
        signed = f"{message_id}.{timestamp}.".encode() + request.body
        expected = [base64_digest(signing_key(secret), signed) for secret in secrets]
        if not matches_any(expected, signatures):
            raise SignatureRejected(RejectReason.MISMATCH)
        check_timestamp(timestamp, now=now, tolerance=tolerance)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        message_id = request.header(self.header_prefix + "id")
        if not message_id:
            raise MalformedEvent(f"{self.header_prefix}id is missing")
        occurred_at = _occurred_at(data.get("timestamp"))
        if occurred_at is None:
            timestamp = request.header(self.header_prefix + "timestamp") or ""
            occurred_at = (
                epoch_seconds(int(timestamp), "timestamp") if timestamp.isdigit() else None
            )
        return Envelope(
            provider=self.name,
            event_id=message_id,
            event_type=text_field(data.get("type"), "type", required=True) or "",
            object_id=text_field(dig(data, "data", "id"), "data.id"),
            occurred_at=occurred_at,
            received_at=received_at,
            body=body_text(request),
        )


class StandardWebhooks(Svix):
    name = "standard"
    header_prefix = "webhook-"
