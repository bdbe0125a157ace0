"""What every provider module implements, and the small parsing helpers they share.

Pure standard library (plus the Envelope model): no AWS imports, so verification
can be read, tested and reused on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from hookline.envelope import Envelope
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected


@dataclass(frozen=True)
class WebhookRequest:
    """A request exactly as received: raw body bytes, lower-cased header names."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    url: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Provider(Protocol):
    """Verify, then normalize. Nothing else belongs in a provider module."""

    @property
    def name(self) -> str: ...

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        """Raise SignatureRejected unless one of `secrets` signed this request."""

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        """Turn a verified request into an Envelope; raise MalformedEvent if it cannot be."""


def required_header(request: WebhookRequest, name: str) -> str:
    value = request.header(name)
    if value is None or not value.strip():
        raise SignatureRejected(RejectReason.MISSING_HEADER)
    return value.strip()


def check_timestamp(timestamp: str, *, now: float, tolerance: int) -> None:
    """Refuse a signed timestamp too far in the past (replay) or future (clock abuse)."""
    if not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureRejected(RejectReason.TIMESTAMP_OUT_OF_TOLERANCE)


def json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: nested deeper than any provider sends (and than can be read).
        raise MalformedEvent("body is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise MalformedEvent("body is not a JSON object")
    return data


def text_field(value: object, what: str, *, required: bool = False) -> str | None:
    """A JSON id field as text: providers send ids as strings or numbers."""
    if value is None or value == "":
        if required:
            raise MalformedEvent(f"{what} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedEvent(f"{what} is not a string or integer")
    return str(value)


def dig(data: Mapping[str, Any], *path: str) -> object:
    """data[a][b]... or None when any step is missing or not an object."""
    current: object = data
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def epoch_seconds(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEvent(f"{what} is not an integer timestamp")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedEvent(f"{what} is out of range") from None


def iso_datetime(value: object, what: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} is not an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEvent(f"{what} is not an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def body_text(request: WebhookRequest) -> str:
    """The raw body as text for the envelope; json_object already proved it is UTF-8."""
    return request.body.decode("utf-8")


def pick_headers(request: WebhookRequest, names: Sequence[str]) -> dict[str, str]:
    """The few non-secret headers the consumer needs, never signature headers."""
    return {name: value for name in names if (value := request.header(name)) is not None}
