"""eSewa ePay v2: the success redirect's `data`, signed inside itself.

eSewa has no server-to-server webhook: after a payment it redirects the
customer to the shop's success_url with `?data=<base64 JSON>`. The shop's
success page forwards that value to POST /webhooks/esewa, as the body
`data=<value>` (form or query style, URL-encoded) or the bare base64 value.
The JSON is `{transaction_code, status, total_amount, transaction_uuid,
product_code, signed_field_names, signature}`, where `signature` is the base64
HMAC-SHA256 (the merchant's secret key) of `f1=v1,f2=v2,...` over the fields
`signed_field_names` lists, in that order (developer.esewa.com.np/pages/Epay).

- values are signed as they appear in the JSON text: a string's value, any
  other token's literal text. eSewa sends `"total_amount":1000.0`, signed as
  `1000.0`; a parser would read 1000 and the HMAC would never match, so the
  raw tokens are read (`signed_values`);
- only signed fields are read, by the receiver and by the consumer alike:
  transaction_uuid, product_code, total_amount and transaction_code must be
  among the signed ones (UNSIGNED_FIELD otherwise), and a document with a
  repeated name is refused (the signer and a reader could see different values);
- identity: `{product_code}:{transaction_uuid}:{transaction_code}`, all signed.
  No timestamp is signed (none exists), so a replayed redirect is the same
  event, a duplicate; the state comes from eSewa's status API anyway, never
  from the callback's `status`;
- object: transaction_uuid, which the shop chooses (alphanumerics and `-`, as
  eSewa allows) and which is also the shop's order id;
- the envelope's body is the decoded JSON document (the consumer reads JSON),
  exactly as eSewa signed it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import parse_qsl

from hookline.envelope import Envelope
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected
from hookline.providers.base import ApiRead, ProviderApi, WebhookRequest, json_object
from hookline.providers.crypto import base64_digest, matches_any

# The status API is public: its answers are keyed by signed facts, no credential.
API = ProviderApi("esewa", "https://epay.esewa.com.np")
# What hookline reads, so what must be signed.
REQUIRED_SIGNED = ("transaction_uuid", "product_code", "total_amount", "transaction_code")
# eSewa: "alphanumeric characters and hyphen(-) only". No `:`, so the event id reads one way.
TRANSACTION_UUID = re.compile(r"[A-Za-z0-9-]{1,100}")
PRODUCT_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
TRANSACTION_CODE = re.compile(r"[A-Za-z0-9]{1,64}")
# Rupees as eSewa writes them (`100`, `1000.0`); never a sign, an exponent or a comma.
AMOUNT = re.compile(r"[0-9]{1,15}(\.[0-9]{1,4})?")
_BASE64 = re.compile(rb"[A-Za-z0-9+/\-_]+={0,2}")
_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_WHITESPACE = " \t\n\r"


def _carried(body: bytes) -> bytes:
    """The base64 value the shop forwarded: `data=<value>` (URL-encoded), or bare."""
    text = body.strip()
    if text.startswith(b"data="):
        try:
            fields = parse_qsl(text.decode("ascii"), keep_blank_values=True, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            raise SignatureRejected(RejectReason.MALFORMED_HEADER) from None
        values = [value for name, value in fields if name == "data"]
        if len(values) != 1:
            raise SignatureRejected(RejectReason.MALFORMED_HEADER)
        # Form decoding reads an unescaped `+` as a space; base64 holds no spaces.
        text = values[0].replace(" ", "+").encode("ascii")
    if not text:
        raise SignatureRejected(RejectReason.MISSING_HEADER)
    return text


def document_text(body: bytes) -> str:
    """The JSON document the body carries, as text; SignatureRejected if there is none."""
    carried = _carried(body)
    if not _BASE64.fullmatch(carried):
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    # The URL-safe alphabet and missing padding, as a shop's framework may pass them on.
    unpadded = carried.rstrip(b"=").translate(_STANDARD_ALPHABET)
    try:
        decoded = base64.b64decode(unpadded + b"=" * (-len(unpadded) % 4), validate=True)
        return decoded.decode("utf-8")
    except (binascii.Error, ValueError):
        raise SignatureRejected(RejectReason.MALFORMED_HEADER) from None


def signed_values(text: str) -> dict[str, str]:
    """Each top-level member of the JSON object `text` as eSewa signs it.

    A string member is its value; a number, true, false or null its literal
    token. Objects and arrays are left out (eSewa signs neither). A repeated
    name is refused: which value was signed would be ambiguous.
    """
    # Depth, NaN and huge numbers are refused first, as for every provider.
    json_object(text.encode("utf-8"))
    decoder = json.JSONDecoder()
    members: dict[str, str] = {}
    seen: set[str] = set()
    index = _skip(text, 0)
    if text[index : index + 1] != "{":
        raise MalformedEvent("the eSewa document is not a JSON object")
    index = _skip(text, index + 1)
    if text[index : index + 1] == "}":
        return members
    while True:
        if text[index : index + 1] != '"':
            raise MalformedEvent("the eSewa document is not a JSON object")
        name, index = decoder.raw_decode(text, index)
        index = _skip(text, index)
        if text[index : index + 1] != ":":
            raise MalformedEvent("the eSewa document is not a JSON object")
        start = _skip(text, index + 1)
        value, end = decoder.raw_decode(text, start)
        if name in seen:
            raise MalformedEvent(f"the eSewa document repeats {name!r}")
        seen.add(name)
        if isinstance(value, str):
            members[name] = value
        elif not isinstance(value, dict | list):
            members[name] = text[start:end]
        index = _skip(text, end)
        if text[index : index + 1] == ",":
            index = _skip(text, index + 1)
            continue
        if text[index : index + 1] == "}":
            return members
        raise MalformedEvent("the eSewa document is not a JSON object")


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def message(values: dict[str, str], names: Sequence[str]) -> str:
    """`f1=v1,f2=v2,...` in the order eSewa lists the signed fields."""
    return ",".join(f"{name}={values[name]}" for name in names)


def _signed_names(values: dict[str, str]) -> list[str]:
    listed = values.get("signed_field_names")
    if not listed:
        raise SignatureRejected(RejectReason.MISSING_HEADER)
    names = listed.split(",")
    if any(not name or name not in values for name in names) or len(set(names)) != len(names):
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    return names


def _document(request: WebhookRequest) -> tuple[str, dict[str, str]]:
    text = document_text(request.body)
    try:
        values = signed_values(text)
    except MalformedEvent:
        # Without a readable document there is no signature to check.
        raise SignatureRejected(RejectReason.MALFORMED_HEADER) from None
    return text, values


def _fact(values: dict[str, str], name: str, shape: re.Pattern[str]) -> str:
    value = values[name]
    if not shape.fullmatch(value):
        raise MalformedEvent(f"the eSewa {name} is not shaped as eSewa sends it")
    return value


def event_id(values: dict[str, str]) -> str:
    """`{product_code}:{transaction_uuid}:{transaction_code}`: signed parts only, no `:` in any."""
    return ":".join(
        (
            _fact(values, "product_code", PRODUCT_CODE),
            _fact(values, "transaction_uuid", TRANSACTION_UUID),
            _fact(values, "transaction_code", TRANSACTION_CODE),
        )
    )


class ESewa:
    name = "esewa"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        # No timestamp exists to hold against `now`: a replay is a duplicate (event_id).
        _, values = _document(request)
        names = _signed_names(values)
        signature = values.get("signature")
        if not signature:
            raise SignatureRejected(RejectReason.MISSING_HEADER)
        signed = message(values, names).encode("utf-8")
        expected = [base64_digest(secret.encode("utf-8"), signed) for secret in secrets]
        if not matches_any(expected, [signature]):
            raise SignatureRejected(RejectReason.MISMATCH)
        if not set(REQUIRED_SIGNED) <= set(names):
            raise SignatureRejected(RejectReason.UNSIGNED_FIELD)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        text, values = _document(request)
        if not set(REQUIRED_SIGNED) <= set(_signed_names(values)):
            raise SignatureRejected(RejectReason.UNSIGNED_FIELD)
        _fact(values, "total_amount", AMOUNT)
        return Envelope(
            provider=self.name,
            event_id=event_id(values),
            event_type="payment",
            object_id=values["transaction_uuid"],
            # eSewa signs no time.
            occurred_at=None,
            received_at=received_at,
            headers={},
            body=text,
        )


def status_read(values: dict[str, str]) -> ApiRead:
    """GET /api/epay/transaction/status/ with the signed product_code, total_amount and
    transaction_uuid, each checked again before it goes in a URL."""
    return ApiRead(
        ("api", "epay", "transaction", "status", ""),
        {
            "product_code": _fact(values, "product_code", PRODUCT_CODE),
            "total_amount": _fact(values, "total_amount", AMOUNT),
            "transaction_uuid": _fact(values, "transaction_uuid", TRANSACTION_UUID),
        },
    )
