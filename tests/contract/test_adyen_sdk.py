"""Adyen: notifications Adyen's Python SDK signs are accepted; every tampered variant is
refused by the SDK and by hookline.

`Adyen.util.generate_notification_sig` (the SDK's signer) and
`is_valid_hmac_notification` (its validator) build the signing string
`pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success`
without escaping, `""` for a missing key. Deliberate differences
(hookline.providers.adyen): exactly one item; `:` refused in every signed field but
merchantReference, `value` an integer; a JSON null signs as "" (the SDK signs "None";
Adyen never sends null there).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import Adyen.util as adyen_util
import pytest
from hookline.errors import SignatureRejected
from hookline.providers.adyen import Adyen
from hookline.providers.base import WebhookRequest
from hypothesis import given, settings
from hypothesis import strategies as st

ADYEN = Adyen()
NOW = 1_760_000_000
CASES = settings(max_examples=200, deadline=None)

references = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=16)
keys = st.binary(min_size=32, max_size=32).map(lambda key: key.hex().upper())
items = st.fixed_dictionaries(
    {
        "pspReference": references,
        "merchantAccountCode": st.text(
            alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
            min_size=1,
            max_size=40,
        ),
        # The shop's own reference: any text, `:` included.
        "merchantReference": st.text(min_size=0, max_size=80),
        "amount": st.fixed_dictionaries(
            {
                "value": st.integers(0, 2**63 - 1),
                "currency": st.sampled_from(["EUR", "USD", "JPY", "KWD"]),
            }
        ),
        "eventCode": st.sampled_from(
            ["AUTHORISATION", "CAPTURE", "CANCELLATION", "REFUND", "REPORT_AVAILABLE"]
        ),
        "success": st.sampled_from(["true", "false"]),
        "eventDate": st.just("2025-10-09T10:53:20+02:00"),
    },
    optional={"originalReference": references},
)


def signed(item: dict[str, Any], key: str) -> dict[str, Any]:
    notification = copy.deepcopy(item)
    signature = adyen_util.generate_notification_sig(item, key).decode()
    notification["additionalData"] = {"hmacSignature": signature}
    return {"live": "false", "notificationItems": [{"NotificationRequestItem": notification}]}


def accepted(document: dict[str, Any], key: str) -> bool:
    request = WebhookRequest(body=json.dumps(document).encode())
    try:
        ADYEN.verify(request, (key,), now=NOW, tolerance=300)
    except SignatureRejected:
        return False
    return True


def sdk_accepts(document: dict[str, Any], key: str) -> bool:
    return bool(adyen_util.is_valid_hmac_notification(document, key))


def entry(document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = document["notificationItems"][0]["NotificationRequestItem"]
    return found


@CASES
@given(item=items, key=keys)
def test_sdk_signature_is_accepted(item: dict[str, Any], key: str) -> None:
    document = signed(item, key)
    assert sdk_accepts(document, key)
    assert accepted(document, key)
    # The key as the Customer Area shows it or in lower case: the same bytes.
    assert accepted(document, key.lower())


@CASES
@given(item=items, key=keys, previous=keys)
def test_either_key_during_rotation_may_match(
    item: dict[str, Any], key: str, previous: str
) -> None:
    document = signed(item, previous)
    request = WebhookRequest(body=json.dumps(document).encode())
    ADYEN.verify(request, (key, previous), now=NOW, tolerance=300)


SIGNED_CHANGES = {
    "pspReference": lambda item: item | {"pspReference": item["pspReference"][::-1] + "X"},
    "originalReference": lambda item: (
        item | {"originalReference": (item.get("originalReference") or "") + "X"}
    ),
    "merchantAccountCode": lambda item: (
        item | {"merchantAccountCode": item["merchantAccountCode"] + "X"}
    ),
    "merchantReference": lambda item: item | {"merchantReference": item["merchantReference"] + "X"},
    "value": lambda item: (
        item | {"amount": item["amount"] | {"value": (item["amount"]["value"] + 1) % 2**63}}
    ),
    "currency": lambda item: (
        item
        | {
            "amount": item["amount"]
            | {"currency": "GBP" if item["amount"]["currency"] != "GBP" else "EUR"}
        }
    ),
    "eventCode": lambda item: item | {"eventCode": item["eventCode"] + "_X"},
    "success": lambda item: item | {"success": "false" if item["success"] == "true" else "true"},
}


@pytest.mark.parametrize("field", SIGNED_CHANGES)
@CASES
@given(item=items, key=keys)
def test_each_signed_field_changed_is_refused_by_both(
    field: str, item: dict[str, Any], key: str
) -> None:
    document = signed(item, key)
    changed = SIGNED_CHANGES[field](entry(document))
    tampered = {"live": "false", "notificationItems": [{"NotificationRequestItem": changed}]}
    assert not sdk_accepts(tampered, key)
    assert not accepted(tampered, key)


@CASES
@given(item=items, key=keys, other=keys, index=st.integers(0, 10_000))
def test_a_wrong_key_or_a_changed_signature_is_refused_by_both(
    item: dict[str, Any], key: str, other: str, index: int
) -> None:
    document = signed(item, key)
    if other != key:
        assert not sdk_accepts(document, other)
        assert not accepted(document, other)
    signature = entry(document)["additionalData"]["hmacSignature"]
    position = index % len(signature)
    flipped = signature[:position] + ("A" if signature[position] != "A" else "B")
    entry(document)["additionalData"]["hmacSignature"] = flipped + signature[position + 1 :]
    assert not sdk_accepts(document, key)
    assert not accepted(document, key)


@CASES
@given(item=items, key=keys, date=st.text(max_size=40), reason=st.text(max_size=40))
def test_unsigned_fields_change_neither_verdict_nor_identity(
    item: dict[str, Any], key: str, date: str, reason: str
) -> None:
    """eventDate, reason and additionalData are not signed: both accept a copy that
    changes them, and hookline names it exactly as the original (a duplicate)."""
    document = signed(item, key)
    original = ADYEN.normalize(
        WebhookRequest(body=json.dumps(document).encode()),
        received_at=datetime.now(UTC),
    )
    entry(document).update({"eventDate": date, "reason": reason})
    entry(document)["additionalData"]["authCode"] = reason
    assert sdk_accepts(document, key)
    assert accepted(document, key)
    replayed = ADYEN.normalize(
        WebhookRequest(body=json.dumps(document).encode()), received_at=original.received_at
    )
    assert (replayed.event_id, replayed.object_id, replayed.occurred_at) == (
        original.event_id,
        original.object_id,
        original.occurred_at,
    )


# Adyen's documented example: the notification of
# https://docs.adyen.com/development-resources/webhooks/secure-webhooks/verify-hmac-signatures
# (pspReference 7914073381342284, TestMerchant, TestPayment-1407325143704, 1130 EUR,
# AUTHORISATION, true) with the sample HMAC keys of Adyen's own SDK tests:
# github.com/Adyen/adyen-ruby-api-library spec/utils/hmac_validator_spec.rb and
# github.com/Adyen/adyen-php-api-library tests/Adyen/Util/HmacSignatureTest.php.
DOCUMENTED_ITEM = {
    "pspReference": "7914073381342284",
    "merchantAccountCode": "TestMerchant",
    "merchantReference": "TestPayment-1407325143704",
    "amount": {"value": 1130, "currency": "EUR"},
    "eventCode": "AUTHORISATION",
    "success": "true",
    "paymentMethod": "visa",
}
DOCUMENTED = [
    (
        "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
        "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=",
    ),
    (
        "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00",
        "Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I=",
    ),
]


@pytest.mark.parametrize(("key", "signature"), DOCUMENTED)
def test_the_documented_examples_verify(key: str, signature: str) -> None:
    notification = DOCUMENTED_ITEM | {"additionalData": {"hmacSignature": signature}}
    document = {"live": "false", "notificationItems": [{"NotificationRequestItem": notification}]}
    assert sdk_accepts(document, key)
    assert accepted(document, key)
    notification["merchantReference"] = "TestPayment-1407325143705"
    assert not accepted(document, key)
