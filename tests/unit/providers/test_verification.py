"""Every provider: one validly signed request, then exactly one thing changed per test."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hookline.errors import ConfigurationError, MalformedEvent, RejectReason, SignatureRejected
from hookline.providers import PROVIDER_NAMES, Provider, WebhookRequest, build_registry

from tests.support import samples
from tests.support.signers import FORGED_SECRETS, NOW, SECRETS, Signed, sign

REGISTRY = build_registry()
TOLERANCE = 300
TIMESTAMPED = ("stripe", "svix", "standard", "mercadopago", "paddle")
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)
# They sign nothing (verify accepts anything; the consumer confirms each callback with
# the provider's API): no signature to forge, tamper with, rotate out or leave off.
UNSIGNED = ("khalti", "mollie")
# They sign named fields inside the body, with no signature header: a changed byte
# matters where it is a signed value, and the signature is a body member, not a header.
SIGNED_IN_BODY = ("adyen", "esewa")
SIGNED = tuple(name for name in PROVIDER_NAMES if name not in UNSIGNED)
HEADER_SIGNED = tuple(name for name in SIGNED if name not in SIGNED_IN_BODY)


def verify(
    provider: str, request: WebhookRequest, secrets: tuple[str, ...] | None = None, now: float = NOW
) -> None:
    REGISTRY[provider].verify(
        request, secrets or (SECRETS[provider][0],), now=now, tolerance=TOLERANCE
    )


def rejected(provider: str, request: WebhookRequest, **kwargs: object) -> RejectReason:
    with pytest.raises(SignatureRejected) as caught:
        verify(provider, request, **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


@pytest.fixture(params=PROVIDER_NAMES)
def signed(request: pytest.FixtureRequest) -> Signed:
    return sign(request.param)


@pytest.fixture(params=SIGNED)
def keyed(request: pytest.FixtureRequest) -> Signed:
    """A request from a provider that signs something."""
    return sign(request.param)


@pytest.fixture(params=HEADER_SIGNED)
def headed(request: pytest.FixtureRequest) -> Signed:
    """A request from a provider whose signature travels in headers."""
    return sign(request.param)


def test_registry_has_every_provider_of_the_design() -> None:
    assert set(REGISTRY) == {
        "stripe",
        "square",
        "mercadopago",
        "shopify",
        "github",
        "svix",
        "standard",
        "paddle",
        "adyen",
        "esewa",
        "khalti",
        "mollie",
        "razorpay",
        "lemonsqueezy",
        "woocommerce",
    }
    assert set(PROVIDER_NAMES) <= set(REGISTRY)
    provider: Provider = REGISTRY["stripe"]
    assert provider.name == "stripe"


def test_valid_request_is_accepted_and_normalized(signed: Signed) -> None:
    verify(signed.provider, signed.request)
    envelope = REGISTRY[signed.provider].normalize(signed.request, received_at=RECEIVED_AT)
    assert envelope.provider == signed.provider
    assert envelope.event_id == signed.event_id
    assert envelope.event_type == signed.event_type
    assert envelope.object_id == signed.object_id
    assert envelope.body == signed.queued_body
    assert envelope.received_at == RECEIVED_AT


def test_body_tampered_by_one_byte_is_refused(keyed: Signed) -> None:
    signed = keyed
    if signed.provider in SIGNED_IN_BODY:
        # One byte of a signed value (Adyen's pspReference, eSewa's transaction_uuid).
        value = signed.object_id or ""
        changed = value[:-1] + chr(ord(value[-1]) ^ 0x01)
        request = signed.with_document(signed.document.replace(value.encode(), changed.encode()))
        assert request.body != signed.request.body
        assert rejected(signed.provider, request) is RejectReason.MISMATCH
        return
    body = bytearray(signed.request.body)
    body[len(body) // 2] ^= 0x01
    request = signed.with_body(bytes(body))
    if signed.provider == "mercadopago":
        # Mercado Pago signs the query's data.id, not the body: the body is checked
        # against the signed id in normalize, and the consumer refetches the payment.
        verify(signed.provider, request)
        return
    assert rejected(signed.provider, request) is RejectReason.MISMATCH


def test_wrong_secret_is_refused(keyed: Signed) -> None:
    signed = keyed
    other = sign(signed.provider, secret=SECRETS[signed.provider][1])
    assert rejected(signed.provider, other.request) is RejectReason.MISMATCH


@pytest.mark.parametrize("signing_secret", [0, 1], ids=["current", "previous"])
def test_rotated_secrets_both_accepted(signed: Signed, signing_secret: int) -> None:
    request = sign(signed.provider, secret=SECRETS[signed.provider][signing_secret]).request
    verify(signed.provider, request, secrets=SECRETS[signed.provider])


def test_secret_removed_after_rotation_is_refused(keyed: Signed) -> None:
    signed = keyed
    old = sign(signed.provider, secret=SECRETS[signed.provider][1])
    assert rejected(signed.provider, old.request, secrets=(SECRETS[signed.provider][0],)) is (
        RejectReason.MISMATCH
    )


def test_each_signature_header_missing_is_refused(headed: Signed) -> None:
    signed = headed
    assert signed.signature_headers
    for header in signed.signature_headers:
        assert rejected(signed.provider, signed.with_headers(**{header: None})) is (
            RejectReason.MISSING_HEADER
        ), header


def test_each_signature_header_empty_is_refused(headed: Signed) -> None:
    signed = headed
    for header in signed.signature_headers:
        for empty in ("", "   "):
            assert rejected(signed.provider, signed.with_headers(**{header: empty})) is (
                RejectReason.MISSING_HEADER
            ), header


MALFORMED = {
    "stripe": ["v1=abc", "t=1760000000", "t=abc,v1=00", "garbage", "t=1760000000,v1="],
    "square": ["not base64!", "c2hvcnQ="],
    "mercadopago": ["v1=00", "ts=1760000000", "ts=abc,v1=00", "garbage", "ts=,v1="],
    "shopify": ["not base64!", "c2hvcnQ="],
    "github": ["sha1=0123abcd", "0123abcd", "sha256=", "sha256=zz"],
    "svix": ["v1", "v2,abc", "garbage"],
    "standard": ["v1", "v2,abc", "garbage"],
    "paddle": ["h1=00", "ts=1760000000", "ts=abc;h1=00", "garbage", "ts=1;ts=2;h1=00", "ts=;h1="],
    "razorpay": ["zz", "00", "sha256=00", "garbage"],
    "lemonsqueezy": ["zz", "00", "sha256=00", "garbage"],
    "woocommerce": ["not base64!", "c2hvcnQ="],
}


def test_malformed_signature_header_is_refused(headed: Signed) -> None:
    signed = headed
    header = signed.signature_headers[-1]
    for value in MALFORMED[signed.provider]:
        reason = rejected(signed.provider, signed.with_headers(**{header: value}))
        assert reason in (RejectReason.MALFORMED_HEADER, RejectReason.MISMATCH), value


# Paddle separates its header's entries with ";": an identical comma-joined copy reads as
# the genuine ts and h1 (the same proof twice, accepted); a copy that differs is refused.
SEMICOLON_SEPARATED = ("paddle",)


def test_duplicated_signature_header_is_refused(headed: Signed) -> None:
    signed = headed
    # API Gateway joins a repeated header's values with a comma.
    for header in signed.signature_headers:
        value = signed.request.headers[header]
        if signed.provider in SEMICOLON_SEPARATED:
            # The second copy is another genuine signature, of another time.
            other = sign(signed.provider, timestamp=NOW - 1).request.headers[header]
            joined = signed.with_headers(**{header: f"{value},{other}"})
            assert rejected(signed.provider, joined) is RejectReason.MISMATCH
            continue
        assert rejected(signed.provider, signed.with_headers(**{header: f"{value},{value}"})) in (
            RejectReason.MALFORMED_HEADER,
            RejectReason.MISMATCH,
        ), header


@pytest.mark.parametrize("provider", TIMESTAMPED)
@pytest.mark.parametrize("offset", [TOLERANCE + 1, 3600, 86_400 * 365])
def test_timestamp_too_old_is_refused(provider: str, offset: int) -> None:
    stale = sign(provider, timestamp=NOW - offset)
    assert rejected(provider, stale.request) is RejectReason.TIMESTAMP_OUT_OF_TOLERANCE


@pytest.mark.parametrize("provider", TIMESTAMPED)
@pytest.mark.parametrize("offset", [TOLERANCE + 1, 3600])
def test_timestamp_too_far_in_the_future_is_refused(provider: str, offset: int) -> None:
    future = sign(provider, timestamp=NOW + offset)
    assert rejected(provider, future.request) is RejectReason.TIMESTAMP_OUT_OF_TOLERANCE


@pytest.mark.parametrize("provider", TIMESTAMPED)
def test_timestamp_at_the_edge_of_tolerance_is_accepted(provider: str) -> None:
    verify(provider, sign(provider, timestamp=NOW - TOLERANCE).request)
    verify(provider, sign(provider, timestamp=NOW + TOLERANCE).request)


def test_non_utf8_body_verifies_but_cannot_be_normalized(signed: Signed) -> None:
    body = b"\xff\xfe" + signed.document
    resigned = sign(signed.provider, body=body)
    if signed.provider in SIGNED_IN_BODY:
        # The signature is inside the body: an unreadable body carries none (401, not 400).
        assert rejected(signed.provider, resigned.request) is RejectReason.MALFORMED_HEADER
        return
    verify(signed.provider, resigned.request)
    with pytest.raises(MalformedEvent):
        REGISTRY[signed.provider].normalize(resigned.request, received_at=RECEIVED_AT)


@pytest.mark.parametrize("body", [b"", b"null", b"[1,2]", b"{", b'"text"'])
def test_signed_body_that_is_not_a_json_object_is_malformed(signed: Signed, body: bytes) -> None:
    resigned = sign(signed.provider, body=body)
    if signed.provider in SIGNED_IN_BODY:
        # No notification or document: nowhere for a signature to be (401, not 400).
        assert rejected(signed.provider, resigned.request) in (
            RejectReason.MALFORMED_HEADER,
            RejectReason.MISSING_HEADER,
        )
        return
    verify(signed.provider, resigned.request)
    with pytest.raises(MalformedEvent):
        REGISTRY[signed.provider].normalize(resigned.request, received_at=RECEIVED_AT)


def test_non_ascii_signature_header_is_refused_not_crashed(headed: Signed) -> None:
    signed = headed
    header = signed.signature_headers[-1]
    assert rejected(signed.provider, signed.with_headers(**{header: "t=1,v1=ü\u2603"})) in (
        RejectReason.MALFORMED_HEADER,
        RejectReason.MISMATCH,
    )


# ---------------------------------------------------------------- provider specifics


def test_stripe_any_v1_entry_may_match() -> None:
    signed = sign("stripe")
    header = signed.request.headers["stripe-signature"]
    timestamp, good = header.split(",")
    request = signed.with_headers(stripe_signature=f"{timestamp},v1={'0' * 64},{good},v0=ignored")
    verify("stripe", request)


def test_stripe_event_without_id_is_malformed() -> None:
    payload = samples.stripe_event()
    del payload["id"]
    signed = sign("stripe", body=samples.encode(payload))
    verify("stripe", signed.request)
    with pytest.raises(MalformedEvent):
        REGISTRY["stripe"].normalize(signed.request, received_at=RECEIVED_AT)


def test_square_signs_the_notification_url() -> None:
    signed = sign("square")
    moved = replace(signed.request, url="https://other.example.test/webhooks/square")
    assert rejected("square", moved) is RejectReason.MISMATCH
    # The configured URL wins over the request's own: custom domains and proxies.
    configured = build_registry(square_notification_url=samples.SQUARE_URL)["square"]
    configured.verify(moved, (SECRETS["square"][0],), now=NOW, tolerance=TOLERANCE)


def test_mercadopago_body_must_name_the_signed_object() -> None:
    payload = samples.mercadopago_event(payment_id="999")
    signed = sign("mercadopago", body=samples.encode(payload))
    verify("mercadopago", signed.request)  # the signature covers data.id=1234567890 only
    with pytest.raises(SignatureRejected) as caught:
        REGISTRY["mercadopago"].normalize(signed.request, received_at=RECEIVED_AT)
    assert caught.value.reason is RejectReason.UNSIGNED_FIELD


def test_mercadopago_signed_query_id_is_part_of_the_signature() -> None:
    signed = sign("mercadopago")
    forged = replace(signed.request, query={"data.id": "999", "type": "payment"})
    assert rejected("mercadopago", forged) is RejectReason.MISMATCH
    dropped = signed.with_headers(x_request_id=None)
    assert rejected("mercadopago", dropped) is RejectReason.MISMATCH


def test_shopify_falls_back_to_webhook_id_and_needs_one() -> None:
    signed = sign("shopify")
    envelope = REGISTRY["shopify"].normalize(
        signed.with_headers(x_shopify_event_id=None), received_at=RECEIVED_AT
    )
    assert envelope.event_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    with pytest.raises(MalformedEvent):
        REGISTRY["shopify"].normalize(
            signed.with_headers(x_shopify_event_id=None, x_shopify_webhook_id=None),
            received_at=RECEIVED_AT,
        )


def test_github_needs_a_delivery_id() -> None:
    signed = sign("github")
    with pytest.raises(MalformedEvent):
        REGISTRY["github"].normalize(
            signed.with_headers(x_github_delivery=None), received_at=RECEIVED_AT
        )


def test_svix_secret_that_is_not_base64_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        verify("svix", sign("svix").request, secrets=("whsec_***not-base64***",))


def test_svix_occurred_at_reads_clerk_millisecond_timestamps() -> None:
    envelope = REGISTRY["svix"].normalize(sign("svix").request, received_at=RECEIVED_AT)
    assert envelope.occurred_at == datetime.fromtimestamp(1_760_000_000.123, UTC)


def test_standard_webhooks_use_their_own_headers() -> None:
    signed = sign("standard")
    renamed = {
        name.replace("webhook-", "svix-"): value for name, value in signed.request.headers.items()
    }
    assert (
        rejected("standard", replace(signed.request, headers=renamed))
        is RejectReason.MISSING_HEADER
    )


def test_base64_of_signature_is_compared_exactly() -> None:
    signed = sign("shopify")
    signature = signed.request.headers["x-shopify-hmac-sha256"]
    # Same bytes, different text (no padding): refuse rather than normalise attacker input.
    unpadded = base64.b64encode(base64.b64decode(signature)).decode().rstrip("=")
    assert (
        rejected("shopify", signed.with_headers(x_shopify_hmac_sha256=unpadded))
        is RejectReason.MISMATCH
    )


def test_adyen_signature_missing_from_the_notification_is_refused() -> None:
    document = json.loads(sign("adyen").request.body)
    del document["notificationItems"][0]["NotificationRequestItem"]["additionalData"][
        "hmacSignature"
    ]
    request = WebhookRequest(body=json.dumps(document).encode())
    assert rejected("adyen", request) is RejectReason.MISSING_HEADER


def test_adyen_secret_that_is_not_hex_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        verify("adyen", sign("adyen").request, secrets=("adyen-key-not-hex",))


def test_esewa_signature_missing_from_the_document_is_refused() -> None:
    signed = sign("esewa")
    document = json.loads(signed.document)
    del document["signature"]
    request = signed.with_document(json.dumps(document).encode())
    assert rejected("esewa", request) is RejectReason.MISSING_HEADER


@pytest.mark.parametrize("provider", UNSIGNED)
def test_an_unsigned_provider_accepts_any_request_as_a_thin_event(provider: str) -> None:
    """What UNSIGNED means: no secret is needed to pass verify, and the event names only a
    payment (the consumer asks the provider's API what is true)."""
    signed = sign(provider, secret=FORGED_SECRETS[provider])
    verify(provider, signed.request, secrets=("",))
    envelope = REGISTRY[provider].normalize(signed.request, received_at=RECEIVED_AT)
    assert (envelope.event_type, envelope.object_id, envelope.occurred_at) == (
        "payment",
        signed.object_id,
        None,
    )
