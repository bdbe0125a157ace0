"""What every provider module implements, and the small parsing helpers they share.

Pure standard library (plus the Envelope model): no AWS imports, so verification
can be read, tested and reused on its own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from hookline.envelope import Envelope
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected

# Deeper than any provider nests by an order of magnitude (their payloads stay
# under ten levels), and far below Python's recursion limit on any version, so
# everything that reads a body after the receiver (handlers, the consumer,
# psycopg, jsonb) can walk it. Python's own limit differs between versions
# (about 1,000 levels on 3.11, about 10,000 on 3.13): never rely on it.
MAX_JSON_DEPTH = 64
# A signed timestamp this long is out of any tolerance; refused before int() reads it.
MAX_TIMESTAMP_DIGITS = 20
# What no HTTP field value holds (RFC 9110 5.5: control characters other than
# HTAB) and what no bytes decode to (lone UTF-16 surrogates): text a provider
# never sent, that cannot be UTF-8 encoded for an HMAC or stored by PostgreSQL.
_NOT_FIELD_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def _field_text(value: str | None) -> str | None:
    if value is not None and _NOT_FIELD_TEXT.search(value):
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    return value


@dataclass(frozen=True)
class WebhookRequest:
    """A request exactly as received: raw body bytes, lower-cased header names.

    The request line (URL and query) is checked when the request is built, since
    a provider signs it (Square the URL, Mercado Pago the query's data.id) and
    never puts a control character or a lone surrogate in it. Headers are
    checked when read, through `header`: only the ones a provider reads matter.
    Either way such text is a malformed request, refused before any HMAC.
    """

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    url: str = ""

    def __post_init__(self) -> None:
        _field_text(self.url)
        for value in self.query.values():
            _field_text(value)

    def header(self, name: str) -> str | None:
        """The header's value; SignatureRejected (malformed) if it is not field text."""
        return _field_text(self.headers.get(name.lower()))


@dataclass(frozen=True)
class ProviderApi:
    """Where a thin provider's API is and how hookline signs in to it.

    A thin event (Mercado Pago's, eSewa's, Khalti's, Mollie's) names a resource
    and proves little else: its handler applies what this API answers. The
    provider module declares the API; the consumer's one fetch mechanism
    (hookline.clients.provider_apis) calls it, with one timeout and retry profile.
    """

    provider: str
    # Production; `{PROVIDER}_API_URL` (a template parameter) points elsewhere.
    default_url: str
    # The key in the webhook secret document holding the credential; None: no
    # credential (eSewa's status API is public, its answers keyed by signed facts).
    credential: str | None = None
    # The Authorization header, the credential in place of `{}`.
    authorization: str = "Bearer {}"
    # Error statuses whose JSON body is still the answer (Khalti: 400 for an expired
    # or canceled payment, with its status in the body).
    answer_statuses: frozenset[int] = frozenset()

    @property
    def url_setting(self) -> str:
        return f"{self.provider.upper()}_API_URL"


@dataclass(frozen=True)
class ApiRead:
    """One read of a provider's API: a GET, or a POST that only reads (Khalti's lookup)."""

    path: tuple[str, ...]
    params: Mapping[str, str] = field(default_factory=dict)
    # Present: sent as a JSON POST body.
    body: Mapping[str, Any] | None = None


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


def timestamped_signatures(
    header: str, *, separator: str, timestamp_key: str, signature_key: str
) -> tuple[str, list[str]]:
    """`t=<ts>,v1=<sig>,v1=<sig>` (Stripe) or `ts=<ts>;h1=<sig>` (Paddle): the one
    timestamp and every signature of the scheme; other keys are ignored, as the SDKs do.

    Two timestamps mean the header was sent twice or tampered with: never guess which.
    """
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(separator):
        key, found, value = item.strip().partition("=")
        if not found or not value:
            raise SignatureRejected(RejectReason.MALFORMED_HEADER)
        if key == timestamp_key:
            timestamps.append(value)
        elif key == signature_key:
            signatures.append(value)
    if len(timestamps) != 1 or not signatures:
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    timestamp = timestamps[0]
    if not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    return timestamp, signatures


def check_timestamp(timestamp: str, *, now: float, tolerance: int) -> None:
    """Refuse a signed timestamp too far in the past (replay) or future (clock abuse)."""
    if not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    # int() refuses (ValueError) past Python's int_max_str_digits; no time is this long.
    if len(timestamp) > MAX_TIMESTAMP_DIGITS:
        raise SignatureRejected(RejectReason.TIMESTAMP_OUT_OF_TOLERANCE)
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureRejected(RejectReason.TIMESTAMP_OUT_OF_TOLERANCE)


def _refuse_constant(name: str) -> float:
    # NaN and Infinity are Python's extension, not JSON (RFC 8259 section 6).
    raise ValueError(f"{name} is not JSON")


# Built once and shared, as json.loads shares its own default decoder: given a
# hook, json.loads builds a decoder per call. A leading BOM is refused all the
# same ("Expecting value" where json.loads names the BOM): the body is not JSON.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or MalformedEvent.

    Refused: anything but UTF-8 (a BOM included), NaN and Infinity, numbers no
    double holds (`1e999`), integers past Python's int_max_str_digits, nesting
    deeper than MAX_JSON_DEPTH. No provider sends these, and nothing a customer
    types can produce them (a customer's text arrives as a JSON string; NUL and
    surrogate escapes inside strings are accepted, the consumer stores them).
    Duplicate names are accepted, the last one winning, as the providers' SDKs,
    the consumer and jsonb all read them: no reader of the body sees another value.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvent("body is not UTF-8") from None
    try:
        data = _DECODER.decode(text)
    except RecursionError:
        raise MalformedEvent(f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise MalformedEvent("body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedEvent("body is not a JSON object")
    _check_depth_and_numbers(data)
    return data


def _check_depth_and_numbers(data: dict[str, Any]) -> None:
    """MalformedEvent if `data` nests too deep or holds a non-finite number.

    Iterative, so the check never recurses however deep the parser went. The
    parser makes exactly dict, list, str, int, float, bool and None (no hooks
    for objects), so exact type tests say what isinstance would, at half the
    cost on a warm request.
    """
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(data, 1)]
    while pending:
        container, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedEvent(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
        for item in container.values() if isinstance(container, dict) else container:
            kind = type(item)
            if kind is dict or kind is list:
                pending.append((item, depth + 1))
            elif kind is float and not math.isfinite(item):
                raise MalformedEvent("body has a number out of range")


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


# Event times outside these years are no provider's: refused, never queued.
EARLIEST_YEAR = 1970
LATEST_YEAR = 9998


def epoch_seconds(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEvent(f"{what} is not an integer timestamp")
    try:
        moment = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedEvent(f"{what} is out of range") from None
    return _plausible(moment, what)


def iso_datetime(value: object, what: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} is not an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEvent(f"{what} is not an ISO 8601 timestamp") from None
    return _plausible(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC), what)


def _plausible(moment: datetime, what: str) -> datetime:
    """A time every later step can hold: in UTC, within years 1970-9998.

    `0001-01-01T00:30+01:00` parses but is year 0 in UTC, which PostgreSQL
    stores and Python cannot read back: refused here (400), not parked later.
    """
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise MalformedEvent(f"{what} is out of range") from None
    if not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        raise MalformedEvent(f"{what} is out of range")
    return moment


def per_delivery_event_id(object_id: str, received_at: datetime) -> str:
    """`{object_id}:{received_at in UTC, microseconds}`: each delivery its own event.

    For senders that sign nothing and post the same body on every change (Mollie),
    or whose callback may come again after a pending answer (Khalti): a second
    delivery must be checked again, not dropped as a duplicate.
    """
    return f"{object_id}:{received_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"


def body_text(request: WebhookRequest) -> str:
    """The raw body as text for the envelope; json_object already proved it is UTF-8."""
    return request.body.decode("utf-8")


def pick_headers(request: WebhookRequest, names: Sequence[str]) -> dict[str, str]:
    """The few non-secret headers the consumer needs, never signature headers."""
    return {name: value for name in names if (value := request.header(name)) is not None}
