"""Mollie: `id=tr_...` and nothing signed; only a Mollie payment id makes an event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hookline.errors import MalformedEvent
from hookline.providers.base import WebhookRequest
from hookline.providers.mollie import Mollie, payment_read

PROVIDER = Mollie()
RECEIVED_AT = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)


def test_the_posted_id_is_a_thin_payment_event() -> None:
    request = WebhookRequest(body=b"id=tr_WDqYK6vllg")
    PROVIDER.verify(request, ("test_fake_mollie_api_key",), now=0, tolerance=300)
    envelope = PROVIDER.normalize(request, received_at=RECEIVED_AT)
    assert envelope.object_id == "tr_WDqYK6vllg"
    assert envelope.event_type == "payment"
    assert envelope.event_id == "tr_WDqYK6vllg:2026-11-20T10:00:00.123456Z"
    assert json.loads(envelope.body) == {"id": "tr_WDqYK6vllg"}


def test_every_status_change_is_its_own_event() -> None:
    """Mollie posts the same body on every change: only the delivery tells them apart."""
    request = WebhookRequest(body=b"id=tr_WDqYK6vllg")
    first = PROVIDER.normalize(request, received_at=RECEIVED_AT)
    second = PROVIDER.normalize(request, received_at=RECEIVED_AT + timedelta(seconds=30))
    assert first.event_id != second.event_id
    assert first.group_id == second.group_id  # still applied in order


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"id=",
        b"id=ord_kEn1PlbGa",  # the Orders API: not a payment this handler fetches
        b"id=re_4qqhO89gsT",
        b"id=tr_",
        b"id=tr_abc/../../v2/refunds",
        b"id=tr_abc%00",
        b"id=tr_a&id=tr_b",
        b"payment=tr_WDqYK6vllg",
        b"\xff",
        b"&".join(b"f%d=1" % n for n in range(20)) + b"&id=tr_abc",
    ],
)
def test_anything_but_one_payment_id_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        PROVIDER.normalize(WebhookRequest(body=body), received_at=RECEIVED_AT)


def test_the_read_is_the_payment() -> None:
    assert payment_read("tr_WDqYK6vllg").path == ("v2", "payments", "tr_WDqYK6vllg")
    with pytest.raises(MalformedEvent):
        payment_read("tr_a/b")
