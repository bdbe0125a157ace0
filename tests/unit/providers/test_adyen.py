"""Adyen: one validly signed notification, then exactly one thing changed per test.

Signed here from Adyen's documentation
(https://docs.adyen.com/development-resources/webhooks/secure-webhooks/verify-hmac-signatures:
base64 HMAC-SHA256, keyed with the hex-decoded HMAC key, of
`pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success`,
empty for a missing field), independently of hookline.providers.adyen;
tests/contract/test_adyen_sdk.py checks the same against Adyen's Python SDK.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hookline.errors import ConfigurationError, MalformedEvent, RejectReason, SignatureRejected
from hookline.handlers import adyen as adyen_handlers
from hookline.providers.adyen import Adyen, hmac_key
from hookline.providers.base import WebhookRequest

NOW = 1_760_000_000
KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
PREVIOUS = "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00"
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)
ADYEN = Adyen()
FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)


def item(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "additionalData": {"authCode": "058705", "cardSummary": "1111"},
        "amount": {"currency": "EUR", "value": 1130},
        "eventCode": "AUTHORISATION",
        "eventDate": "2025-10-09T10:53:20+02:00",
        "merchantAccountCode": "TestMerchant",
        "merchantReference": "TestPayment-1407325143704",
        "paymentMethod": "visa",
        "pspReference": "7914073381342284",
        "success": "true",
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def sign(notification: dict[str, Any], key: str = KEY) -> str:
    fields = {**notification, **notification.get("amount", {})}
    signing = ":".join(str(fields.get(name, "")) for name in FIELDS)
    digest = hmac.new(bytes.fromhex(key), signing.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def body(notification: dict[str, Any], *, key: str = KEY, signature: str | None = None) -> bytes:
    signed = copy.deepcopy(notification)
    signed.setdefault("additionalData", {})["hmacSignature"] = (
        signature if signature is not None else sign(notification, key)
    )
    return json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": signed}]}
    ).encode()


def request(raw: bytes) -> WebhookRequest:
    return WebhookRequest(body=raw, headers={"content-type": "application/json"})


def verify(raw: bytes, secrets: tuple[str, ...] = (KEY,)) -> None:
    ADYEN.verify(request(raw), secrets, now=NOW, tolerance=300)


def rejected(raw: bytes, **kwargs: Any) -> RejectReason:
    with pytest.raises(SignatureRejected) as caught:
        verify(raw, **kwargs)
    return caught.value.reason


def test_a_signed_authorisation_verifies_and_normalizes() -> None:
    raw = body(item())
    verify(raw)
    envelope = ADYEN.normalize(request(raw), received_at=RECEIVED_AT)
    assert envelope.provider == "adyen"
    assert envelope.event_id == "AUTHORISATION:7914073381342284:true"
    assert envelope.event_type == "AUTHORISATION"
    assert envelope.object_id == "7914073381342284"
    # Adyen signs no time: eventDate is not trusted to date the event.
    assert envelope.occurred_at is None
    assert envelope.body == raw.decode()


def test_a_modification_is_ordered_with_the_payment_it_modifies() -> None:
    refund = item(eventCode="REFUND", pspReference="8815073381342285")
    refund["originalReference"] = "7914073381342284"
    envelope = ADYEN.normalize(request(body(refund)), received_at=RECEIVED_AT)
    assert envelope.object_id == "7914073381342284"
    assert envelope.event_id == "REFUND:8815073381342285:true"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pspReference", "7914073381342285"),
        ("originalReference", "7914073381342284"),
        ("merchantAccountCode", "OtherMerchant"),
        ("merchantReference", "TestPayment-other"),
        ("amount", {"currency": "EUR", "value": 1}),
        ("amount", {"currency": "USD", "value": 1130}),
        ("eventCode", "REFUND"),
        ("success", "false"),
    ],
)
def test_each_signed_field_changed_is_refused(field: str, value: object) -> None:
    signature = sign(item())
    assert rejected(body(item(**{field: value}), signature=signature)) is RejectReason.MISMATCH


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("eventDate", "2001-01-01T00:00:00+00:00"),
        ("reason", "changed"),
        ("paymentMethod", "mc"),
        ("additionalData", {"authCode": "999999"}),
    ],
)
def test_an_unsigned_field_changed_keeps_the_same_identity(field: str, value: object) -> None:
    """Adyen does not sign these: a replay that changes one is the same event (a duplicate)."""
    original = body(item())
    changed = body(item(**{field: value}), signature=sign(item()))
    verify(changed)
    first = ADYEN.normalize(request(original), received_at=RECEIVED_AT)
    second = ADYEN.normalize(request(changed), received_at=RECEIVED_AT)
    assert (second.event_id, second.object_id, second.occurred_at) == (
        first.event_id,
        first.object_id,
        first.occurred_at,
    )


def test_wrong_key_is_refused() -> None:
    assert rejected(body(item(), key="00" * 32)) is RejectReason.MISMATCH


@pytest.mark.parametrize("signing", [KEY, PREVIOUS], ids=["current", "previous"])
def test_either_key_of_a_rotation_is_accepted(signing: str) -> None:
    verify(body(item(), key=signing), (KEY, PREVIOUS))


def test_a_lower_case_key_is_the_same_key() -> None:
    verify(body(item()), (KEY.lower(),))


@pytest.mark.parametrize(
    "additional",
    [None, {}, {"hmacSignature": ""}, {"hmacSignature": "  "}, {"hmacSignature": 5}],
)
def test_a_missing_signature_is_refused(additional: object) -> None:
    notification = {"live": "false", "notificationItems": [{"NotificationRequestItem": item()}]}
    entry = notification["notificationItems"][0]["NotificationRequestItem"]  # type: ignore[index]
    entry.pop("additionalData")
    if additional is not None:
        entry["additionalData"] = additional
    assert rejected(json.dumps(notification).encode()) is RejectReason.MISSING_HEADER


@pytest.mark.parametrize("items", [[], [1, 2], None, "x"])
def test_anything_but_exactly_one_item_is_malformed(items: object) -> None:
    raw = body(item())
    document = json.loads(raw)
    if isinstance(items, list) and len(items) == 2:
        items = document["notificationItems"] * 2
    document["notificationItems"] = items
    with pytest.raises(MalformedEvent, match="exactly one"):
        verify(json.dumps(document).encode())


def test_a_body_that_is_not_json_carries_no_signature() -> None:
    assert rejected(b"{not json") is RejectReason.MALFORMED_HEADER


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pspReference", "7914:073381342284"),
        ("merchantAccountCode", "Test:Merchant"),
        ("eventCode", "AUTHORISATION:x"),
        ("success", 1),
        ("merchantReference", ["a"]),
        ("amount", {"currency": "EUR", "value": "1130"}),
        ("amount", {"currency": "EUR", "value": True}),
        ("amount", [1130]),
    ],
)
def test_a_signed_field_that_could_read_two_ways_is_refused(field: str, value: object) -> None:
    """Every signed field but merchantReference is colon-free text, value an integer:
    the signing string then splits one way only."""
    notification = item(**{field: value})
    raw = body(notification, signature="AAAA")
    assert rejected(raw) is RejectReason.MALFORMED_HEADER


def test_a_colon_in_the_merchant_reference_is_signed_as_sent() -> None:
    verify(body(item(merchantReference="order:42:EUR")))


def test_a_null_field_signs_as_empty_like_a_missing_one() -> None:
    signature = sign(item())
    verify(body(item() | {"originalReference": None}, signature=signature))


@pytest.mark.parametrize("secret", ["", "xyz", "ABC", "AB CD", "0x" + KEY])
def test_a_key_that_is_not_hex_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ConfigurationError):
        hmac_key(secret)
    with pytest.raises(ConfigurationError):
        verify(body(item()), (secret,))


@pytest.mark.parametrize(("field", "value"), [("pspReference", None), ("eventCode", None)])
def test_a_signed_notification_without_reference_or_code_is_malformed(
    field: str, value: object
) -> None:
    raw = body(item(**{field: value}))
    verify(raw)
    with pytest.raises(MalformedEvent, match=field):
        ADYEN.normalize(request(raw), received_at=RECEIVED_AT)


def test_success_other_than_true_or_false_is_malformed() -> None:
    raw = body(item(success="maybe"))
    verify(raw)
    with pytest.raises(MalformedEvent, match="success"):
        ADYEN.normalize(request(raw), received_at=RECEIVED_AT)


@pytest.mark.parametrize("mode", ["", "Manual", "delayed", "auto"])
def test_an_unknown_capture_mode_is_a_configuration_error(mode: str) -> None:
    """ADYEN_CAPTURE is read once at start: a typo must stop the consumer, not count
    authorisations as money (or never count them)."""
    with pytest.raises(ConfigurationError, match="capture"):
        adyen_handlers.configure(mode)
    assert adyen_handlers.capture_mode() == "immediate"
