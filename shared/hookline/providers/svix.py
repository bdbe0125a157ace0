"""Svix (Clerk and other Svix senders) and Standard Webhooks: one scheme, two header prefixes.

`{prefix}signature` is a space-separated list of `v1,<base64>`; each is
HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with the base64 part of a
`whsec_...` secret.

As the official SDKs do: the `whsec_` prefix and the base64 padding are
optional, an empty key is refused, and Svix reads each `svix-*` header, else
its `webhook-*` twin (Standard Webhooks reads only `webhook-*`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime, timedelta

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
    """The HMAC key a secret encodes; ConfigurationError unless it is base64 of a non-empty key.

    A configuration mistake, not the sender's: fail loudly, never key with nothing.
    Stricter than the SDKs in one way: characters outside the base64 alphabet
    (whitespace, URL-safe `-_`) are refused, not silently dropped.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError("not whsec_ followed by base64") from None
    if not key:
        raise ConfigurationError("whsec_ followed by an empty key")
    return key


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
        seconds = epoch_seconds(value // 1000, "timestamp")
        return None if seconds is None else seconds + timedelta(milliseconds=value % 1000)
    if isinstance(value, int):
        return epoch_seconds(value, "timestamp")
    return iso_datetime(value, "timestamp")


class Svix:
    name = "svix"
    # In order of precedence, chosen per header: the svix SDK's fallback.
    header_prefixes: tuple[str, ...] = ("svix-", "webhook-")

    def _header_name(self, request: WebhookRequest, suffix: str) -> str:
        """The first prefix's header that is present (even empty), as the SDK picks it."""
        for prefix in self.header_prefixes:
            if prefix + suffix in request.headers:
                return prefix + suffix
        return self.header_prefixes[0] + suffix

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        message_id = required_header(request, self._header_name(request, "id"))
        timestamp = required_header(request, self._header_name(request, "timestamp"))
        signatures = _signatures(required_header(request, self._header_name(request, "signature")))
        if not timestamp.isascii() or not timestamp.isdigit():
            raise SignatureRejected(RejectReason.MALFORMED_HEADER)
        # surrogatepass: building the signed bytes never raises, whatever the headers hold.
        signed = f"{message_id}.{timestamp}.".encode("utf-8", "surrogatepass") + request.body
        expected = [base64_digest(signing_key(secret), signed) for secret in secrets]
        if not matches_any(expected, signatures):
            raise SignatureRejected(RejectReason.MISMATCH)
        check_timestamp(timestamp, now=now, tolerance=tolerance)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        id_header = self._header_name(request, "id")
        # Exactly the id verify() signed (stripped): one signature, one identity.
        message_id = required_header(request, id_header)
        try:
            occurred_at = _occurred_at(data.get("timestamp"))
        except MalformedEvent:
            # The body's own time is free-form (Go's zero time, a float): the signed
            # header timestamp, already within the window, says when instead.
            occurred_at = None
        if occurred_at is None:
            timestamp = request.header(self._header_name(request, "timestamp")) or ""
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
    header_prefixes = ("webhook-",)
