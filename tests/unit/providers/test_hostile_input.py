"""Hostile input that is validly signed, or never reaches the HMAC: refused, never a crash.

Every provider: one validly signed request, then exactly one thing changed per case.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hookline.envelope import Envelope
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected
from hookline.providers import PROVIDER_NAMES, WebhookRequest, build_registry
from hookline.providers.base import (
    MAX_JSON_DEPTH,
    check_timestamp,
    epoch_seconds,
    iso_datetime,
    json_object,
)

from tests.support.signers import NOW, READ_HEADERS, SECRETS, sign

REGISTRY = build_registry()
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)

# Headers inside the signed message or carrying the signature: refused before the HMAC.
SIGNED_HEADERS: dict[str, tuple[str, ...]] = {
    "stripe": ("stripe-signature",),
    "square": ("x-square-hmacsha256-signature",),
    "mercadopago": ("x-signature", "x-request-id"),
    "shopify": ("x-shopify-hmac-sha256",),
    "github": ("x-hub-signature-256",),
    "svix": ("svix-id", "svix-timestamp", "svix-signature"),
    "standard": ("webhook-id", "webhook-timestamp", "webhook-signature"),
    "paddle": ("paddle-signature",),
    "razorpay": ("x-razorpay-signature",),
    "lemonsqueezy": ("x-signature",),
    "woocommerce": ("x-wc-webhook-signature",),
    # Adyen and eSewa carry their signature inside the body; Khalti and Mollie sign nothing.
    "adyen": (),
    "esewa": (),
    "khalti": (),
    "mollie": (),
}
# Their bodies are forms, never read as JSON: a hostile JSON value cannot reach a reader.
# Hostile forms are tested below instead (test_a_form_body_that_names_no_payment_is_malformed).
FORM_BODIES = ("khalti", "mollie")
JSON_BODIES = tuple(name for name in PROVIDER_NAMES if name not in FORM_BODIES)
# Their signature is inside the body: a body no reader holds carries no readable
# signature, so it is refused at verify (SignatureRejected, 401), not at normalize (400).
SIGNED_IN_BODY = ("adyen", "esewa")
# Lone surrogates (no bytes decode to them: only a JSON event can carry one) and the
# control characters RFC 9110 forbids in a field value.
NOT_FIELD_TEXT = ("\ud800", "\udfff", "\x00", "\r\n", "\n", "\x1b", "\x7f")


def accept(provider: str, request: WebhookRequest) -> Envelope:
    """What the receiver does with a request: verify, then normalize."""
    REGISTRY[provider].verify(request, (SECRETS[provider][0],), now=NOW, tolerance=300)
    return REGISTRY[provider].normalize(request, received_at=RECEIVED_AT)


def body_with(provider: str, text: str) -> bytes:
    """The provider's genuine document with a field `hostile` whose JSON text is `text`
    (signers.sign carries it as the provider does: eSewa's inside `data=`)."""
    body = json.loads(sign(provider).document)
    body["hostile"] = "__hostile__"
    return json.dumps(body).replace('"__hostile__"', text).encode()


def refused_as_unreadable(provider: str, request: WebhookRequest) -> None:
    """MalformedEvent (400); where the signature is inside the body, SignatureRejected (401)."""
    if provider in SIGNED_IN_BODY:
        with pytest.raises(SignatureRejected) as caught:
            accept(provider, request)
        assert caught.value.reason is RejectReason.MALFORMED_HEADER
        return
    with pytest.raises(MalformedEvent):
        accept(provider, request)


def nested(depth: int) -> str:
    """A JSON value `depth` levels deep: arrays within arrays."""
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@pytest.mark.parametrize("bad", NOT_FIELD_TEXT, ids=ascii)
def test_a_read_header_that_is_not_field_text_is_a_malformed_header(
    provider: str, bad: str
) -> None:
    signed = sign(provider)
    for name in READ_HEADERS[provider]:
        value = signed.request.headers.get(name, "x")
        request = signed.with_headers(**{name.replace("-", "_"): value[:8] + bad + value[8:]})
        with pytest.raises(SignatureRejected) as caught:
            accept(provider, request)
        assert caught.value.reason is RejectReason.MALFORMED_HEADER, name


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_a_signed_header_with_a_lone_surrogate_is_refused_before_the_hmac(provider: str) -> None:
    signed = sign(provider)
    for name in SIGNED_HEADERS[provider]:
        request = signed.with_headers(**{name.replace("-", "_"): "\ud800"})
        with pytest.raises(SignatureRejected) as caught:
            # No secret at all: a comparison would need one, so this refusal came first.
            REGISTRY[provider].verify(request, (), now=NOW, tolerance=300)
        assert caught.value.reason is RejectReason.MALFORMED_HEADER, name


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_a_header_no_provider_reads_may_hold_anything(provider: str) -> None:
    signed = sign(provider)
    envelope = accept(provider, signed.with_headers(x_forwarded_junk="\ud800\x00\r\n"))
    assert envelope.event_id == signed.event_id


def test_a_tab_and_non_ascii_text_are_field_text() -> None:
    signed = sign("shopify")
    envelope = accept("shopify", signed.with_headers(x_shopify_shop_domain="caf\u00e9\tshop"))
    assert envelope.headers["x-shopify-shop-domain"] == "caf\u00e9\tshop"


@pytest.mark.parametrize("bad", NOT_FIELD_TEXT, ids=ascii)
def test_a_request_line_that_is_not_field_text_is_refused_when_built(bad: str) -> None:
    with pytest.raises(SignatureRejected) as caught:
        WebhookRequest(body=b"{}", query={"data.id": f"123{bad}"})
    assert caught.value.reason is RejectReason.MALFORMED_HEADER
    with pytest.raises(SignatureRejected):
        WebhookRequest(body=b"{}", url=f"https://hooks.example.test/webhooks/square{bad}")


@pytest.mark.parametrize("provider", JSON_BODIES)
@pytest.mark.parametrize(
    "text",
    [
        nested(MAX_JSON_DEPTH),  # with the body's own level: one too deep
        nested(1_000),
        nested(50_000),
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "-1e999",
        "9" * 5_000,  # past Python's int_max_str_digits
    ],
    ids=lambda text: text[:12],
)
def test_a_signed_body_too_deep_or_with_numbers_no_reader_holds_is_malformed(
    provider: str, text: str
) -> None:
    request = sign(provider, body=body_with(provider, text)).request
    refused_as_unreadable(provider, request)


@pytest.mark.parametrize("provider", JSON_BODIES)
@pytest.mark.parametrize(
    "text",
    [
        nested(MAX_JSON_DEPTH - 1),
        "1e308",
        "5e-324",
        "9" * 4_000,
        '"gift\\u0000wrap"',  # NUL and surrogate escapes: a customer can type these
        '"caf\\ud800"',
        '"\\u0001\\u001f"',
    ],
    ids=lambda text: text[:12],
)
def test_a_signed_body_every_reader_can_hold_is_accepted(provider: str, text: str) -> None:
    signed = sign(provider, body=body_with(provider, text))
    assert accept(provider, signed.request).event_id == signed.event_id


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe",
        b"pidx=&id=",
        b"pidx=bZQLD9wRVWo4Cd%00&id=tr_WDqY%00",  # NUL inside the id
        b"pidx=bZQL%ED%A0%80&id=tr_%ED%A0%80",  # a surrogate, percent-encoded
        b"pidx=a:b&id=tr_a/b",  # separators no id holds
        b"pidx=" + b"a" * 65 + b"&id=tr_" + b"a" * 65,  # longer than any id
        b"&" * 100_000,  # more fields than any callback
        b"id=tr_a&id=tr_b&pidx=a&pidx=b",  # a name twice
        b"[" * 50_000 + b"]" * 50_000,
    ],
    ids=lambda body: repr(body[:24]),
)
@pytest.mark.parametrize("provider", FORM_BODIES)
def test_a_form_body_that_names_no_payment_is_malformed(provider: str, body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        accept(provider, sign(provider, body=body).request)


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf{}",  # a byte order mark
        b'{"id": "evt_\xff"}',
        b'{"id": "evt_\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes
        b'{"id": "a\x00b"}',  # a raw control character inside a string
        b"",
        b"[]",
        b"1",
        b'"text"',
        b"null",
    ],
    ids=repr,
)
def test_a_body_that_is_not_a_utf8_json_object_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        json_object(body)


def test_duplicate_names_are_read_as_every_reader_reads_them_the_last_wins() -> None:
    assert json_object(b'{"id": "evt_1", "id": "evt_2"}') == {"id": "evt_2"}


def test_the_depth_limit_counts_objects_and_arrays_alike() -> None:
    assert json_object(('{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH).encode())
    with pytest.raises(MalformedEvent, match="nested deeper"):
        json_object(('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)).encode())
    assert json_object(f'{{"a": {nested(MAX_JSON_DEPTH - 1)}}}'.encode())
    with pytest.raises(MalformedEvent, match="nested deeper"):
        json_object(f'{{"a": {nested(MAX_JSON_DEPTH)}}}'.encode())


def test_a_timestamp_longer_than_any_time_is_out_of_tolerance_not_a_crash() -> None:
    with pytest.raises(SignatureRejected) as caught:
        check_timestamp("9" * 5_000, now=NOW, tolerance=300)
    assert caught.value.reason is RejectReason.TIMESTAMP_OUT_OF_TOLERANCE


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:30:00+01:00",  # year 0 in UTC: stored, then unreadable by Python
        "9999-12-31T23:30:00-01:00",  # year 10000 in UTC
        "1969-12-31T23:59:59Z",
    ],
)
def test_an_event_time_no_reader_can_hold_is_malformed(value: str) -> None:
    with pytest.raises(MalformedEvent, match="out of range"):
        iso_datetime(value, "updated_at")


@pytest.mark.parametrize("value", [-1, 253_402_300_800])
def test_an_epoch_time_outside_the_plausible_years_is_malformed(value: int) -> None:
    with pytest.raises(MalformedEvent, match="out of range"):
        epoch_seconds(value, "created")


def test_a_shopify_order_with_a_year_zero_time_is_refused_at_the_receiver() -> None:
    body = json.dumps(
        {
            "id": 1,
            "total_price": "1.00",
            "currency": "USD",
            "financial_status": "paid",
            "updated_at": "0001-01-01T00:30:00+01:00",
        }
    ).encode()
    with pytest.raises(MalformedEvent):
        accept("shopify", sign("shopify", body=body).request)
