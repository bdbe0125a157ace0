"""The generic provider: a sender described by configuration, verified like a built-in.

One validly signed Paystack delivery (x-paystack-signature, hex HMAC-SHA512 of
the body, https://paystack.com/docs/payments/webhooks/#verify-event-origin),
then exactly one thing changed per test; and every rule a configuration must
keep, refused at start with a message naming it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hookline.errors import ConfigurationError, MalformedEvent, RejectReason, SignatureRejected
from hookline.providers import PROVIDER_NAMES, WebhookRequest, build_registry
from hookline.providers.generic import Generic, GenericSpec, parse_specs

NOW = 1_760_000_000
TOLERANCE = 300
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)
SECRET = "sk_test_paystack_fake_current"
PREVIOUS = "sk_test_paystack_fake_previous"
PAYSTACK = {
    "signature_header": "x-paystack-signature",
    "algorithm": "sha512",
    "event_id": ["event", "data.id"],
    "event_type": "event",
    "object_id": "data.reference",
    "occurred_at": "data.paid_at",
}
# A charge.success as Paystack documents it (https://paystack.com/docs/payments/webhooks/).
BODY = json.dumps(
    {
        "event": "charge.success",
        "data": {
            "id": 302961,
            "domain": "live",
            "status": "success",
            "reference": "qTPrJoy9Bx",
            "amount": 10000,
            "currency": "NGN",
            "paid_at": "2016-09-30T21:10:19.000Z",
            "metadata": {"order_id": "order-1001"},
        },
    }
).encode()


def paystack(spec: dict[str, Any] | None = None) -> Generic:
    return Generic(GenericSpec.parse("paystack", spec or PAYSTACK))


def signed(body: bytes = BODY, secret: str = SECRET) -> WebhookRequest:
    # Written from Paystack's docs, independently of the code under test.
    digest = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    return WebhookRequest(body=body, headers={"x-paystack-signature": digest})


def verify(
    provider: Generic, request: WebhookRequest, secrets: tuple[str, ...] = (SECRET,)
) -> None:
    provider.verify(request, secrets, now=NOW, tolerance=TOLERANCE)


def rejected(provider: Generic, request: WebhookRequest) -> RejectReason:
    with pytest.raises(SignatureRejected) as caught:
        verify(provider, request)
    return caught.value.reason


def test_a_signed_paystack_delivery_is_accepted_and_normalized_from_the_body() -> None:
    provider = paystack()
    verify(provider, signed())
    envelope = provider.normalize(signed(), received_at=RECEIVED_AT)
    assert envelope.provider == "paystack"
    assert envelope.event_id == "charge.success:302961"
    assert envelope.event_type == "charge.success"
    assert envelope.object_id == "qTPrJoy9Bx"
    assert envelope.occurred_at == datetime(2016, 9, 30, 21, 10, 19, tzinfo=UTC)
    assert envelope.body == BODY.decode()
    assert envelope.headers == {}


def test_an_older_secret_still_verifies_during_rotation() -> None:
    verify(paystack(), signed(secret=PREVIOUS), (SECRET, PREVIOUS))


def test_upper_case_hex_is_the_same_digest() -> None:
    request = signed()
    upper = request.headers["x-paystack-signature"].upper()
    verify(paystack(), replace(request, headers={"x-paystack-signature": upper}))


def test_a_changed_body_is_refused() -> None:
    request = signed()
    assert rejected(paystack(), replace(request, body=BODY.replace(b"10000", b"1000000"))) is (
        RejectReason.MISMATCH
    )


def test_the_wrong_secret_is_refused() -> None:
    assert rejected(paystack(), signed(secret="sk_test_attacker")) is RejectReason.MISMATCH


def test_a_missing_signature_is_refused() -> None:
    assert rejected(paystack(), replace(signed(), headers={})) is RejectReason.MISSING_HEADER


def test_a_signature_under_another_algorithm_is_refused() -> None:
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    request = WebhookRequest(body=BODY, headers={"x-paystack-signature": digest})
    assert rejected(paystack(), request) is RejectReason.MISMATCH


def test_base64_prefix_and_a_signed_timestamp_and_id_as_configured() -> None:
    spec = {
        "signature_header": "X-Acme-Signature",
        "encoding": "base64",
        "prefix": "v1=",
        "signed": "{timestamp}.{id}.{body}",
        "timestamp_header": "X-Acme-Timestamp",
        "id_header": "X-Acme-Delivery",
        "event_type": "event",
    }
    provider = Generic(GenericSpec.parse("acme", spec))
    message = f"{NOW}.dlv_1.".encode() + BODY
    digest = base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).decode()
    headers = {
        "x-acme-signature": f"v1={digest}",
        "x-acme-timestamp": str(NOW),
        "x-acme-delivery": "dlv_1",
    }
    request = WebhookRequest(body=BODY, headers=headers)
    verify(provider, request)
    # The id header is signed here, so it is the event's identity.
    assert provider.normalize(request, received_at=RECEIVED_AT).event_id == "dlv_1"
    for name, value in [
        ("x-acme-delivery", "dlv_2"),  # a replay under another id
        ("x-acme-timestamp", str(NOW + 1)),  # a replay with a fresh stamp
        ("x-acme-signature", digest),  # the prefix left out
    ]:
        changed = replace(request, headers={**headers, name: value})
        with pytest.raises(SignatureRejected):
            verify(provider, changed)
    stale = f"{NOW - TOLERANCE - 1}.dlv_1.".encode() + BODY
    old_digest = base64.b64encode(hmac.new(SECRET.encode(), stale, hashlib.sha256).digest())
    old = {**headers, "x-acme-timestamp": str(NOW - TOLERANCE - 1)}
    old["x-acme-signature"] = "v1=" + old_digest.decode()
    with pytest.raises(SignatureRejected) as caught:
        verify(provider, replace(request, headers=old))
    assert caught.value.reason is RejectReason.TIMESTAMP_OUT_OF_TOLERANCE


def test_an_event_without_its_configured_id_is_malformed() -> None:
    body = json.dumps({"event": "charge.success", "data": {"reference": "r"}}).encode()
    with pytest.raises(MalformedEvent, match=r"data\.id"):
        paystack().normalize(signed(body), received_at=RECEIVED_AT)


def test_hostile_bodies_are_malformed_after_a_valid_signature() -> None:
    for body in [b"[]", b'{"event": NaN}', b"{" * 100 + b"}" * 100, b"\xff"]:
        verify(paystack(), signed(body))
        with pytest.raises(MalformedEvent):
            paystack().normalize(signed(body), received_at=RECEIVED_AT)


def test_a_configured_sender_is_served_under_its_own_name_beside_the_built_ins() -> None:
    specs = parse_specs(json.dumps({"paystack": PAYSTACK}))
    registry = build_registry(generic=specs)
    assert isinstance(registry["paystack"], Generic)
    assert set(PROVIDER_NAMES) < set(registry)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({}, "signature_header is required"),
        ({**PAYSTACK, "algorithm": "md5"}, "algorithm must be one of"),
        ({**PAYSTACK, "encoding": "base32"}, "encoding must be one of"),
        ({**PAYSTACK, "signed": "{timestamp}"}, r"\{body\} exactly once"),
        ({**PAYSTACK, "signed": "{body}{body}"}, r"\{body\} exactly once"),
        ({**PAYSTACK, "signed": "{body}.{secret}"}, "may only use"),
        # A timestamp that is checked but not signed would prove nothing.
        ({**PAYSTACK, "timestamp_header": "x-ts"}, "go together"),
        ({**PAYSTACK, "signed": "{timestamp}.{body}"}, "go together"),
        ({**PAYSTACK, "id_header": "x-id"}, "go together"),
        ({**PAYSTACK, "tolerance_seconds": 60}, "needs a signed timestamp_header"),
        (
            {
                **PAYSTACK,
                "signed": "{timestamp}.{body}",
                "timestamp_header": "x-ts",
                "tolerance_seconds": 3601,
            },
            "from 1 to 3600",
        ),
        # `{id}{timestamp}`: id "evt_1" with stamp "01760000000" signs as id "evt_10"
        # with "1760000000", a second identity for one captured event.
        (
            {
                **PAYSTACK,
                "signed": "{id}{timestamp}.{body}",
                "timestamp_header": "x-ts",
                "id_header": "x-id",
            },
            "text between two placeholders",
        ),
        ({**PAYSTACK, "event_id": []}, "event_id is required"),
        ({**PAYSTACK, "event_id": "data..id"}, "JSON path"),
        ({**PAYSTACK, "object_id": 3}, "JSON path"),
        ({**PAYSTACK, "prefix": "sha256 ="}, "printable ASCII"),
        ({**PAYSTACK, "header": "x"}, "unknown settings header"),
        ({**PAYSTACK, "signature_header": "x paystack"}, "not a header name"),
    ],
)
def test_a_configuration_that_breaks_a_rule_is_refused_naming_it(
    spec: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        GenericSpec.parse("paystack", spec)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('{"stripe": {"signature_header": "x"}}', "built-in provider"),
        # Keys of the secret document holding API credentials: a sender there would
        # have its HMAC secret sent to Stripe as the API key, or the key used as its HMAC.
        ('{"stripe_api_key": {"signature_header": "x"}}', "API credential"),
        ('{"mercadopago_access_token": {"signature_header": "x"}}', "API credential"),
        (
            '{"acme": {"signature_header": "x-old", "event_id": "id"},'
            ' "acme": {"signature_header": "x-new", "event_id": "id"}}',
            "names acme twice",
        ),
        ('{"Pay Stack": {"signature_header": "x"}}', "lower-case letters"),
        ("[1]", "must be a JSON object"),
        ("{", "not JSON"),
    ],
)
def test_the_document_of_senders_is_refused_naming_the_problem(document: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        parse_specs(document)


def test_two_signed_events_never_share_an_identity_built_from_several_parts() -> None:
    provider = paystack({**PAYSTACK, "event_id": ["event", "data.reference"]})
    ids = [
        provider.normalize(signed(json.dumps(body).encode()), received_at=RECEIVED_AT).event_id
        for body in (
            {"event": "refund:a", "data": {"reference": "b"}},
            {"event": "refund", "data": {"reference": "a:b"}},
        )
    ]
    assert ids == ["refund%3Aa:b", "refund:a%3Ab"]


def test_a_signed_timestamp_written_with_a_leading_zero_is_refused() -> None:
    spec = {
        "signature_header": "x-sig",
        "signed": "{timestamp}.{body}",
        "timestamp_header": "x-ts",
        "event_type": "event",
        "event_id": "data.id",
    }
    provider = Generic(GenericSpec.parse("acme", spec))
    stamp = f"0{NOW}"
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + BODY, hashlib.sha256).hexdigest()
    request = WebhookRequest(body=BODY, headers={"x-sig": digest, "x-ts": stamp})
    assert rejected(provider, request) is RejectReason.MALFORMED_HEADER
