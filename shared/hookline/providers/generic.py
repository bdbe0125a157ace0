"""Any HMAC sender, described by configuration instead of code.

Gateways call this a "custom HMAC" source: the sender signs something built from
the body (and perhaps a timestamp and an id header) with a shared secret, and
puts the digest in a header. A `GenericSpec` says which header, which hash, how
the digest is written, what is signed, and where the event's id, type, object
and time are in the body. Several named senders coexist, each its own provider
(`/webhooks/<name>`, its secrets under `<name>` in the secret document).

The same rules as every provider module hold, and the spec is refused at start
when it would break one:
- the body is always signed (`{body}` exactly once in `signed`);
- a timestamp header is only checked when it is signed, and then always;
- identity, type, object and time come from signed parts only: JSON paths into
  the signed body, or the id header when `signed` covers it.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hookline.envelope import Envelope
from hookline.errors import ConfigurationError, RejectReason, SignatureRejected
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
from hookline.providers.crypto import matches_any

ALGORITHMS = ("sha1", "sha256", "sha512")
ENCODINGS = ("hex", "base64")
PLACEHOLDER = re.compile(r"\{(body|timestamp|id)\}")
# A provider name is a path segment and a key of the secret document.
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,128}")
PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
# Printable ASCII: what a sender puts in front of a digest (`sha256=`, `v1,`).
PREFIX = re.compile(r"[\x21-\x7e]{0,32}")
# As long as the receiver's own SIGNATURE_TOLERANCE_SECONDS may be.
MAX_TOLERANCE_SECONDS = 3600
FIELDS = frozenset(
    {
        "signature_header",
        "algorithm",
        "encoding",
        "prefix",
        "signed",
        "timestamp_header",
        "tolerance_seconds",
        "id_header",
        "event_id",
        "event_type",
        "object_id",
        "occurred_at",
    }
)


def _refuse(name: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"generic provider {name!r}: {problem}")


def _optional_text(name: str, spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise _refuse(name, f"{key} must be a string")
    return value


def _path(name: str, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, str) or not PATH.fullmatch(value):
        raise _refuse(name, f"{key} must be a JSON path such as data.id")
    return tuple(value.split("."))


def _header(name: str, key: str, value: str | None) -> str | None:
    if value is not None and not HEADER_NAME.fullmatch(value):
        raise _refuse(name, f"{key} is not a header name")
    return value.lower() if value is not None else None


@dataclass(frozen=True)
class GenericSpec:
    """One configured sender. Build it with `GenericSpec.parse`, which checks every rule."""

    name: str
    signature_header: str
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    signed: str = "{body}"
    timestamp_header: str | None = None
    # None: the receiver's SIGNATURE_TOLERANCE_SECONDS.
    tolerance_seconds: int | None = None
    id_header: str | None = None
    # Paths joined with ":" make the event id; empty: the (signed) id header.
    event_id: tuple[tuple[str, ...], ...] = ()
    event_type: tuple[str, ...] = ("type",)
    object_id: tuple[str, ...] | None = None
    occurred_at: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, name: str, spec: object, *, reserved: Sequence[str] = ()) -> GenericSpec:
        """The spec for `name`, or ConfigurationError saying what is wrong with it."""
        if not NAME.fullmatch(name):
            raise _refuse(name, "the name must be lower-case letters, digits, - or _")
        if name in reserved:
            raise _refuse(name, "the name is a built-in provider's or an API credential's")
        if not isinstance(spec, Mapping):
            raise _refuse(name, "must be a JSON object")
        unknown = sorted(set(spec) - FIELDS)
        if unknown:
            raise _refuse(name, f"unknown settings {', '.join(unknown)}")
        signature_header = _header(
            name, "signature_header", _optional_text(name, spec, "signature_header")
        )
        if signature_header is None:
            raise _refuse(name, "signature_header is required")
        algorithm = spec.get("algorithm", "sha256")
        if algorithm not in ALGORITHMS:
            raise _refuse(name, f"algorithm must be one of {', '.join(ALGORITHMS)}")
        encoding = spec.get("encoding", "hex")
        if encoding not in ENCODINGS:
            raise _refuse(name, f"encoding must be one of {', '.join(ENCODINGS)}")
        prefix = spec.get("prefix", "")
        if not isinstance(prefix, str) or not PREFIX.fullmatch(prefix):
            raise _refuse(name, "prefix must be at most 32 printable ASCII characters")
        signed = spec.get("signed", "{body}")
        if not isinstance(signed, str):
            raise _refuse(name, "signed must be a string")
        parts = PLACEHOLDER.findall(signed)
        if sum(part == "body" for part in parts) != 1:
            raise _refuse(name, "signed must contain {body} exactly once")
        if len(parts) != len(set(parts)):
            raise _refuse(name, "signed may name each of {timestamp} and {id} once")
        if re.search(r"[{}]", PLACEHOLDER.sub("", signed)):
            raise _refuse(name, "signed may only use {body}, {timestamp} and {id}")
        if re.search(r"\}\{", signed):
            # `{id}{timestamp}`: id "evt_1" with stamp "01760000000" signs the same
            # bytes as id "evt_10" with "1760000000", a second identity for one event.
            raise _refuse(name, "signed must put text between two placeholders")
        timestamp_header = _header(
            name, "timestamp_header", _optional_text(name, spec, "timestamp_header")
        )
        id_header = _header(name, "id_header", _optional_text(name, spec, "id_header"))
        # A header that is read must be signed, and a placeholder needs its header.
        if ("timestamp" in parts) != (timestamp_header is not None):
            raise _refuse(name, "timestamp_header and {timestamp} in signed go together")
        if ("id" in parts) != (id_header is not None):
            raise _refuse(name, "id_header and {id} in signed go together")
        tolerance = spec.get("tolerance_seconds")
        if tolerance is not None and (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, int)
            or not 1 <= tolerance <= MAX_TOLERANCE_SECONDS
        ):
            raise _refuse(
                name, f"tolerance_seconds must be an integer from 1 to {MAX_TOLERANCE_SECONDS}"
            )
        if tolerance is not None and timestamp_header is None:
            raise _refuse(name, "tolerance_seconds needs a signed timestamp_header")
        event_id = spec.get("event_id", [])
        if isinstance(event_id, str):
            event_id = [event_id]
        if not isinstance(event_id, list):
            raise _refuse(name, "event_id must be a JSON path or a list of them")
        if not event_id and id_header is None:
            raise _refuse(name, "event_id is required unless a signed id_header names the event")
        object_id = spec.get("object_id")
        occurred_at = spec.get("occurred_at")
        return cls(
            name=name,
            signature_header=signature_header,
            algorithm=algorithm,
            encoding=encoding,
            prefix=prefix,
            signed=signed,
            timestamp_header=timestamp_header,
            tolerance_seconds=tolerance,
            id_header=id_header,
            event_id=tuple(_path(name, "event_id", path) for path in event_id),
            event_type=_path(name, "event_type", spec.get("event_type", "type")),
            object_id=None if object_id is None else _path(name, "object_id", object_id),
            occurred_at=None if occurred_at is None else _path(name, "occurred_at", occurred_at),
        )

    def message(self, body: bytes, *, timestamp: str = "", event_id: str = "") -> bytes:
        """The bytes the sender signs: `signed` with its placeholders filled, the body raw."""
        values = {"timestamp": timestamp.encode(), "id": event_id.encode()}
        pieces = PLACEHOLDER.split(self.signed)
        # split alternates literal text and placeholder names.
        return b"".join(
            (body if piece == "body" else values[piece]) if index % 2 else piece.encode("utf-8")
            for index, piece in enumerate(pieces)
        )

    def digest(self, secret: str, message: bytes) -> str:
        """The digest of `message` under `secret`, written as the sender writes it."""
        digest = hmac.digest(secret.encode("utf-8"), message, self.algorithm)
        return digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()

    def signature(self, secret: str, message: bytes) -> str:
        """The header value a sender holding `secret` puts on `message`."""
        return self.prefix + self.digest(secret, message)


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        # json.loads would keep the last silently: one of two descriptions is a mistake.
        raise ConfigurationError(f"HOOKLINE_GENERIC_PROVIDERS names {', '.join(repeated)} twice")
    return dict(pairs)


def parse_specs(document: str) -> dict[str, GenericSpec]:
    """`{"<name>": {spec}, ...}` (HOOKLINE_GENERIC_PROVIDERS) as specs; ConfigurationError.

    No sender may take a built-in provider's name or an API credential's key
    (hookline.providers.RESERVED_NAMES): it would share that key of the secret document.
    """
    from hookline.providers import RESERVED_NAMES  # the registry imports this module

    try:
        data = json.loads(document or "{}", object_pairs_hook=_refuse_repeats)
    except ValueError:
        raise ConfigurationError("HOOKLINE_GENERIC_PROVIDERS is not JSON") from None
    if not isinstance(data, dict):
        raise ConfigurationError("HOOKLINE_GENERIC_PROVIDERS must be a JSON object")
    return {
        name: GenericSpec.parse(name, spec, reserved=RESERVED_NAMES) for name, spec in data.items()
    }


def _id_part(value: str) -> str:
    # Each part escaped, so ("refund:a", "b") and ("refund", "a:b") stay two events.
    return value.replace("%", "%25").replace(":", "%3A")


def _text_at(data: Mapping[str, Any], path: tuple[str, ...], *, required: bool) -> str | None:
    what = ".".join(path)
    return text_field(dig(data, *path), what, required=required)


def _time_at(data: Mapping[str, Any], path: tuple[str, ...]) -> datetime | None:
    value = dig(data, *path)
    what = ".".join(path)
    if isinstance(value, int) and not isinstance(value, bool):
        return epoch_seconds(value, what)
    return iso_datetime(value, what)


class Generic:
    def __init__(self, spec: GenericSpec) -> None:
        self.spec = spec
        self.name = spec.name
        # What the sender may put besides the digest is fixed; hex compares case-blind.
        self._fold = str.lower if spec.encoding == "hex" else str

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        spec = self.spec
        header = required_header(request, spec.signature_header)
        if not header.startswith(spec.prefix):
            raise SignatureRejected(RejectReason.MALFORMED_HEADER)
        candidate = self._fold(header.removeprefix(spec.prefix))
        timestamp = ""
        if spec.timestamp_header is not None:
            timestamp = required_header(request, spec.timestamp_header)
        event_id = required_header(request, spec.id_header) if spec.id_header else ""
        message = spec.message(request.body, timestamp=timestamp, event_id=event_id)
        expected = [self._fold(spec.digest(secret, message)) for secret in secrets]
        if not matches_any(expected, [candidate]):
            raise SignatureRejected(RejectReason.MISMATCH)
        if spec.timestamp_header is not None:
            # Checked after the HMAC, as Stripe's SDK does: a forged stamp is a forgery.
            check_timestamp(timestamp, now=now, tolerance=spec.tolerance_seconds or tolerance)
            if timestamp != str(int(timestamp)):
                # One time, one spelling: "01760000000" is no sender's.
                raise SignatureRejected(RejectReason.MALFORMED_HEADER)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        spec = self.spec
        data = json_object(request.body)
        if spec.event_id:
            parts = [_text_at(data, path, required=True) or "" for path in spec.event_id]
            event_id = parts[0] if len(parts) == 1 else ":".join(map(_id_part, parts))
        else:
            assert spec.id_header is not None  # parse() guarantees one of the two
            event_id = required_header(request, spec.id_header)
        return Envelope(
            provider=self.name,
            event_id=event_id,
            event_type=_text_at(data, spec.event_type, required=True) or "",
            object_id=None
            if spec.object_id is None
            else _text_at(data, spec.object_id, required=False),
            occurred_at=None if spec.occurred_at is None else _time_at(data, spec.occurred_at),
            received_at=received_at,
            body=body_text(request),
        )
