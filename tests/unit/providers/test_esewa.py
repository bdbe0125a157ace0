"""eSewa: one validly signed success redirect, then exactly one thing changed per test.

The signer here is written from eSewa's documentation (developer.esewa.com.np/pages/Epay),
not from hookline.providers.esewa; tests/contract/test_esewa_docs.py checks both
against the page's own example values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected
from hookline.providers.base import WebhookRequest
from hookline.providers.esewa import ESewa, status_read

SECRET = "esewa-test-secret-fake-current"
PREVIOUS = "esewa-test-secret-fake-previous"
SIGNED = "transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names"
RECEIVED_AT = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
PROVIDER = ESewa()


def document(
    *,
    secret: str = SECRET,
    signed: str = SIGNED,
    total: str = "1000.0",
    uuid: str = "250610-162413",
    code: str = "000AWEO",
    product: str = "EPAYTEST",
    status: str = "COMPLETE",
    tamper: tuple[str, str] | None = None,
) -> str:
    """The JSON eSewa sends, total_amount a bare number token as eSewa writes it."""
    strings = {
        "transaction_code": code,
        "status": status,
        "transaction_uuid": uuid,
        "product_code": product,
        "signed_field_names": signed,
    }
    values = {**strings, "total_amount": total}
    message = ",".join(f"{name}={values.get(name, '')}" for name in signed.split(","))
    signature = base64.b64encode(
        hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    ).decode()
    if tamper is not None:
        strings[tamper[0]] = tamper[1]
    parts = [f'"{k}":{json.dumps(strings[k])}' for k in ("transaction_code", "status")]
    parts.append(f'"total_amount":{total}')
    parts += [
        f'"{k}":{json.dumps(strings[k])}'
        for k in ("transaction_uuid", "product_code", "signed_field_names")
    ]
    parts.append(f'"signature":"{signature}"')
    return "{" + ",".join(parts) + "}"


def carried(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def request(body: str | bytes) -> WebhookRequest:
    return WebhookRequest(body=body.encode() if isinstance(body, str) else body)


def form(text: str) -> WebhookRequest:
    return request("data=" + quote(carried(text), safe=""))


def verify(req: WebhookRequest, secrets: tuple[str, ...] = (SECRET,)) -> None:
    PROVIDER.verify(req, secrets, now=0, tolerance=300)


def rejected(req: WebhookRequest, secrets: tuple[str, ...] = (SECRET,)) -> RejectReason:
    with pytest.raises(SignatureRejected) as caught:
        verify(req, secrets)
    return caught.value.reason


def test_a_signed_redirect_is_accepted_and_normalized_from_signed_parts() -> None:
    text = document()
    req = form(text)
    verify(req)
    envelope = PROVIDER.normalize(req, received_at=RECEIVED_AT)
    assert envelope.event_id == "EPAYTEST:250610-162413:000AWEO"
    assert envelope.object_id == "250610-162413"
    assert envelope.event_type == "payment"
    assert envelope.occurred_at is None  # eSewa signs no time
    # The queued body is the very document eSewa signed.
    assert envelope.body == text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda t: carried(t), id="bare base64"),
        pytest.param(lambda t: carried(t) + "\n", id="bare with newline"),
        pytest.param(lambda t: "data=" + carried(t), id="form with unescaped +"),
        pytest.param(lambda t: "data=" + quote(carried(t), safe=""), id="form URL-encoded"),
        pytest.param(
            lambda t: base64.urlsafe_b64encode(t.encode()).decode().rstrip("="),
            id="URL-safe, unpadded",
        ),
    ],
)
def test_every_way_a_shop_forwards_data_is_read(body: object) -> None:
    text = document()
    req = request(body(text))  # type: ignore[operator]
    verify(req)
    assert PROVIDER.normalize(req, received_at=RECEIVED_AT).body == text


def test_a_number_is_signed_as_its_literal_token_not_as_parsed() -> None:
    """`1000.0` parses to 1000 in most languages; eSewa signed the text `1000.0`."""
    verify(form(document(total="1000.0")))
    verify(form(document(total="100")))
    # Signed as 1000.0, sent as 1000: the same number, not the same signed text.
    signed_as = document(total="1000.0")
    assert rejected(form(signed_as.replace('"total_amount":1000.0', '"total_amount":1000'))) is (
        RejectReason.MISMATCH
    )


def test_the_previous_secret_still_verifies_during_rotation() -> None:
    verify(form(document(secret=PREVIOUS)), (SECRET, PREVIOUS))


def test_a_wrong_secret_is_a_mismatch() -> None:
    assert rejected(form(document(secret="attacker-secret-esewa"))) is RejectReason.MISMATCH


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("transaction_uuid", "250610-999999"),
        ("product_code", "OTHERSHOP"),
        ("transaction_code", "000ZZZZ"),
        ("status", "PENDING"),
        ("signed_field_names", "transaction_uuid,product_code,total_amount,transaction_code"),
    ],
)
def test_changing_any_signed_field_breaks_the_signature(field: str, value: str) -> None:
    assert rejected(form(document(tamper=(field, value)))) is RejectReason.MISMATCH


def test_the_amount_is_signed() -> None:
    text = document(total="1000.0").replace('"total_amount":1000.0', '"total_amount":1.0')
    assert rejected(form(text)) is RejectReason.MISMATCH


@pytest.mark.parametrize(
    "missing", ["transaction_uuid", "product_code", "total_amount", "transaction_code"]
)
def test_a_field_hookline_reads_must_be_signed(missing: str) -> None:
    """A valid signature over fewer fields: what hookline would read is unsigned."""
    names = ",".join(n for n in SIGNED.split(",") if n != missing)
    req = form(document(signed=names))
    assert rejected(req) is RejectReason.UNSIGNED_FIELD
    with pytest.raises(SignatureRejected):
        PROVIDER.normalize(req, received_at=RECEIVED_AT)


def test_an_unsigned_extra_field_is_never_read() -> None:
    """Fields outside signed_field_names may be added: they change nothing hookline reads."""
    text = document()
    padded = text[:-1] + ',"order_id":"someone-elses-order"}'
    req = form(padded)
    verify(req)
    envelope = PROVIDER.normalize(req, received_at=RECEIVED_AT)
    assert envelope.object_id == "250610-162413"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", RejectReason.MISSING_HEADER),
        (b"data=", RejectReason.MISSING_HEADER),
        (b"not base64!", RejectReason.MALFORMED_HEADER),
        (b"data=a&data=b", RejectReason.MALFORMED_HEADER),
        (base64.b64encode(b"[1, 2]"), RejectReason.MALFORMED_HEADER),
        (base64.b64encode(b"\xff\xfe"), RejectReason.MALFORMED_HEADER),
        (base64.b64encode(b'{"signature": "x"}'), RejectReason.MISSING_HEADER),
    ],
)
def test_a_body_with_no_readable_signed_document_is_refused(
    body: bytes, reason: RejectReason
) -> None:
    assert rejected(request(body)) is reason


def test_a_repeated_name_is_refused_whichever_copy_was_signed() -> None:
    text = document()
    doubled = text[:-1] + ',"transaction_uuid":"other-order"}'
    assert rejected(form(doubled)) is RejectReason.MALFORMED_HEADER


def test_a_signed_field_that_is_not_in_the_document_is_refused() -> None:
    names = SIGNED + ",merchant_extra"
    assert rejected(form(document(signed=names))) is RejectReason.MALFORMED_HEADER


@pytest.mark.parametrize(
    "change",
    [
        {"uuid": "order:1"},  # a `:` would make the event id read two ways
        {"uuid": "order 1"},
        {"code": "000-AWEO"},
        {"total": "-5"},
        {"total": "1e3"},
    ],
)
def test_signed_values_not_shaped_as_esewa_sends_them_are_malformed(
    change: dict[str, str],
) -> None:
    req = form(
        document(
            uuid=change.get("uuid", "250610-162413"),
            code=change.get("code", "000AWEO"),
            total=change.get("total", "1000.0"),
        )
    )
    verify(req)
    with pytest.raises(MalformedEvent):
        PROVIDER.normalize(req, received_at=RECEIVED_AT)


def test_deep_nesting_is_refused_before_any_hmac() -> None:
    text = document()[:-1] + ',"x":' + "[" * 100 + "]" * 100 + "}"
    assert rejected(form(text)) is RejectReason.MALFORMED_HEADER


def test_a_replay_is_the_same_event() -> None:
    req = form(document())
    first = PROVIDER.normalize(req, received_at=RECEIVED_AT)
    later = PROVIDER.normalize(req, received_at=datetime(2026, 12, 1, tzinfo=UTC))
    assert first.event_id == later.event_id


def test_the_status_read_asks_with_the_signed_values_exactly() -> None:
    values = {"product_code": "EPAYTEST", "total_amount": "1000.0", "transaction_uuid": "a-1"}
    read = status_read(values)
    assert read.path == ("api", "epay", "transaction", "status", "")
    assert dict(read.params) == values
    assert read.body is None
