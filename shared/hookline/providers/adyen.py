"""Adyen standard webhooks: an HMAC of eight fields, carried inside the body.

`additionalData.hmacSignature` is base64 HMAC-SHA256, keyed with the endpoint's
HMAC key (hex, decoded to bytes), of
`pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success`
with the empty string for a missing field, joined without escaping, exactly as
the Python SDK builds it (`Adyen.util.generate_notification_sig`; the Ruby SDK
escapes `\\` and `:`, see below).

The signature sits inside the body, so the body is parsed (json_object: bounded
depth, no NaN) before the HMAC; nothing read before it decides anything but
where the signature is. Everything else follows from what is signed:

- one item: Adyen's JSON webhooks carry one NotificationRequestItem. A body
  with none or several is refused (400), since one answer cannot acknowledge
  several events and one item's signature says nothing about another's;
- unambiguous signing string: every signed field but merchantReference must be
  free of `:` (pspReference, originalReference are Adyen's 16 characters,
  merchantAccountCode an account name, currency three letters, eventCode an
  upper-case code, success `true`/`false`), and `value` an integer. The eight
  fields then split one way only, so one signature can never be read as other
  facts (a merchantReference may hold anything; the SDKs accept any text
  everywhere: hookline is deliberately stricter). Under the Ruby SDK's escaping
  only a merchantReference holding `\\` or `:` would sign differently: shops
  should keep both out of their references;
- identity: `{eventCode}:{pspReference}:{success}`, all signed. `eventDate`,
  `additionalData`, `reason`, `paymentMethod` and `operations` are not signed:
  they never move money, and a replay with another eventDate is the same event;
- time: there is no signed time, so no tolerance window can apply. A replay is
  a duplicate by identity instead; one replayed after the ledger row's retention
  is a new row that changes nothing (payments never move back, a refund counts
  once by its own pspReference). occurred_at is left empty: the unsigned
  eventDate could otherwise backdate an event (park it as an expired orphan);
- object (ordering key): originalReference (the payment a CAPTURE, REFUND or
  CANCELLATION modifies), else pspReference (the payment itself).

Basic authentication, which Adyen offers besides the HMAC, is not checked: the
HMAC is mandatory and proves both origin and content; a username and password
would be a second secret to rotate that proves neither (docs/providers.md).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hookline.envelope import Envelope
from hookline.errors import ConfigurationError, MalformedEvent, RejectReason, SignatureRejected
from hookline.providers.base import WebhookRequest, body_text, json_object, text_field
from hookline.providers.crypto import hmac_sha256, matches_any

# The signed fields, in Adyen's order; "value" and "currency" are read from `amount`.
SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)
# Signed, but read from `amount` (a top-level "value" is not what Adyen signs).
_AMOUNT = ("value", "currency")
# The one field free to hold `:` (the shop's own reference).
FREE_FIELD = "merchantReference"
_HEX_KEY = re.compile(r"(?:[0-9A-Fa-f]{2})+")


def hmac_key(secret: str) -> bytes:
    """The HMAC key a secret encodes (hex, as the Customer Area shows it).

    ConfigurationError unless it is a non-empty, even run of hex digits: a
    mistake in the secret document, never a key made of nothing.
    """
    if not _HEX_KEY.fullmatch(secret):
        raise ConfigurationError("not a hex HMAC key")
    return binascii.unhexlify(secret)


def notification_item(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The one NotificationRequestItem; MalformedEvent for none or several, 401 for no item."""
    items = data.get("notificationItems")
    if not isinstance(items, list) or len(items) != 1:
        raise MalformedEvent("notificationItems must hold exactly one item")
    wrapper = items[0]
    item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
    if not isinstance(item, dict):
        # Nothing that could carry a signature.
        raise SignatureRejected(RejectReason.MISSING_HEADER)
    return item


def _signed_text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    return value


def signed_fields(item: Mapping[str, Any]) -> dict[str, str]:
    """The eight signed fields as text, each exactly as it enters the signing string."""
    fields = {name: _signed_text(item, name) for name in SIGNED_FIELDS if name not in _AMOUNT}
    amount = item.get("amount")
    if amount is not None and not isinstance(amount, dict):
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    value = (amount or {}).get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    fields["value"] = "" if value is None else str(value)
    fields["currency"] = _signed_text(amount or {}, "currency")
    for name in SIGNED_FIELDS:
        if name != FREE_FIELD and ":" in fields[name]:
            raise SignatureRejected(RejectReason.MALFORMED_HEADER)
    return fields


def signing_string(fields: Mapping[str, str]) -> str:
    return ":".join(fields[name] for name in SIGNED_FIELDS)


def event_id(fields: Mapping[str, str]) -> str:
    """The ledger identity, from signed fields only (none of them holds `:`)."""
    return f"{fields['eventCode']}:{fields['pspReference']}:{fields['success']}"


def _parse(request: WebhookRequest) -> tuple[Mapping[str, Any], dict[str, str], str]:
    try:
        data = json_object(request.body)
    except MalformedEvent:
        # No readable body, so no signature in it: nothing proves the sender.
        raise SignatureRejected(RejectReason.MALFORMED_HEADER) from None
    item = notification_item(data)
    additional = item.get("additionalData")
    signature = additional.get("hmacSignature") if isinstance(additional, dict) else None
    if not isinstance(signature, str) or not signature.strip():
        raise SignatureRejected(RejectReason.MISSING_HEADER)
    return item, signed_fields(item), signature.strip()


class Adyen:
    name = "adyen"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        _, fields, signature = _parse(request)
        # surrogatepass: a lone surrogate (a JSON escape) never raises here; the
        # envelope refuses it as unstorable once the signature is proven.
        signed = signing_string(fields).encode("utf-8", "surrogatepass")
        expected = [
            base64.b64encode(hmac_sha256(hmac_key(secret), signed)).decode("ascii")
            for secret in secrets
        ]
        if not matches_any(expected, [signature]):
            raise SignatureRejected(RejectReason.MISMATCH)
        # No signed time: nothing to hold against `now` and `tolerance`.

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        _, fields, _ = _parse(request)
        psp_reference = text_field(fields["pspReference"], "pspReference", required=True) or ""
        event_code = text_field(fields["eventCode"], "eventCode", required=True) or ""
        if fields["success"] not in ("true", "false"):
            raise MalformedEvent("success is neither true nor false")
        return Envelope(
            provider=self.name,
            event_id=event_id(fields),
            event_type=event_code,
            object_id=fields["originalReference"] or psp_reference,
            occurred_at=None,
            received_at=received_at,
            body=body_text(request),
        )
