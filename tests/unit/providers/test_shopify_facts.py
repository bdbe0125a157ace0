"""Shopify signs the body only: one validly signed delivery, then exactly one thing changed.

The topic, the event and webhook ids and the trigger time are unsigned labels;
the event's time comes from the body. Both header families of @shopify/shopify-api
(`X-Shopify-*` and the newer lower-case `shopify-*`) are read, the family being
the one carrying the HMAC.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected
from hookline.handlers.shopify import BodyShape, body_shape
from hookline.providers import WebhookRequest, build_registry

from tests.support import samples
from tests.support.signers import NOW, SECRETS, Signed, sign

SHOPIFY = build_registry()["shopify"]
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)
ORDER_CREATED = "2026-11-20T16:15:47-04:00"  # samples.shopify_order's created_at


def verify(request: WebhookRequest) -> None:
    SHOPIFY.verify(request, (SECRETS["shopify"][0],), now=NOW, tolerance=300)


def rejected(request: WebhookRequest) -> RejectReason:
    with pytest.raises(SignatureRejected) as caught:
        verify(request)
    return caught.value.reason


def normalize(request: WebhookRequest) -> Any:
    return SHOPIFY.normalize(request, received_at=RECEIVED_AT)


def newer_names(signed: Signed) -> WebhookRequest:
    """The same delivery with the events family's names: `shopify-*`, no `x-`."""
    headers = {name.removeprefix("x-"): value for name, value in signed.request.headers.items()}
    return replace(signed.request, headers=headers)


def test_the_genuine_delivery_verifies_and_its_time_is_the_bodys() -> None:
    signed = sign("shopify")
    verify(signed.request)
    envelope = normalize(signed.request)
    assert envelope.occurred_at == datetime.fromisoformat(ORDER_CREATED)
    assert envelope.headers["x-shopify-topic"] == "orders/paid"


# ---------------------------------------------------------------- unsigned labels


def test_another_topic_verifies_and_only_relabels() -> None:
    signed = sign("shopify")
    request = signed.with_headers(x_shopify_topic="orders/cancelled")
    verify(request)
    envelope = normalize(request)
    assert envelope.event_type == "orders/cancelled"
    assert (envelope.object_id, envelope.body) == (signed.object_id, signed.request.body.decode())


def test_another_event_id_verifies_and_is_the_ledger_id() -> None:
    signed = sign("shopify")
    request = signed.with_headers(x_shopify_event_id="a-fresh-id")
    verify(request)
    assert normalize(request).event_id == "a-fresh-id"


def test_the_trigger_time_header_never_dates_the_event() -> None:
    signed = sign("shopify")
    later = signed.with_headers(x_shopify_triggered_at="2031-01-01T00:00:00Z")
    verify(later)
    assert normalize(later).occurred_at == datetime.fromisoformat(ORDER_CREATED)


def test_the_bodys_updated_at_dates_an_order() -> None:
    order = samples.shopify_order() | {"updated_at": "2026-11-21T09:00:00-04:00"}
    signed = sign("shopify", body=samples.encode(order))
    verify(signed.request)
    assert normalize(signed.request).occurred_at == datetime.fromisoformat(
        "2026-11-21T09:00:00-04:00"
    )


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({"created_at": "2026-11-22T10:00:00Z", "processed_at": "2026-11-20T10:00:00Z"}, 22),
        ({"created_at": None, "processed_at": "2026-11-20T10:00:00Z"}, 20),
    ],
    ids=["created_at", "processed_at"],
)
def test_a_refund_is_dated_by_its_own_times(times: dict[str, Any], expected: int) -> None:
    refund = {"id": 509562969, "order_id": 820982911946154508, "transactions": [], **times}
    signed = sign("shopify", body=samples.encode(refund))
    verify(signed.request)
    assert normalize(signed.request).occurred_at == datetime(2026, 11, expected, 10, tzinfo=UTC)


def test_a_body_time_that_is_not_a_time_is_malformed() -> None:
    order = samples.shopify_order() | {"updated_at": "yesterday"}
    signed = sign("shopify", body=samples.encode(order))
    verify(signed.request)
    with pytest.raises(MalformedEvent):
        normalize(signed.request)


# ---------------------------------------------------------------- the newer header names


def test_the_newer_header_names_are_accepted() -> None:
    signed = sign("shopify")
    request = newer_names(signed)
    verify(request)
    envelope = normalize(request)
    assert (envelope.event_id, envelope.event_type, envelope.object_id) == (
        signed.event_id,
        signed.event_type,
        signed.object_id,
    )
    assert envelope.headers["shopify-topic"] == "orders/paid"
    assert not any("hmac" in name for name in envelope.headers)


def test_the_newer_names_fall_back_to_the_webhook_id() -> None:
    request = newer_names(sign("shopify"))
    headers = {k: v for k, v in request.headers.items() if k != "shopify-event-id"}
    assert normalize(replace(request, headers=headers)).event_id == (
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    )


def test_the_newer_names_without_their_hmac_are_refused() -> None:
    request = newer_names(sign("shopify"))
    headers = {k: v for k, v in request.headers.items() if k != "shopify-hmac-sha256"}
    assert rejected(replace(request, headers=headers)) is RejectReason.MISSING_HEADER


def test_a_wrong_newer_hmac_is_refused_beside_a_good_legacy_one() -> None:
    # The library reads the newer family first; so does hookline.
    request = sign("shopify").with_headers(shopify_hmac_sha256=base64.b64encode(bytes(32)).decode())
    assert rejected(request) is RejectReason.MISMATCH


def test_a_blank_newer_hmac_leaves_the_legacy_family_in_use() -> None:
    signed = sign("shopify")
    request = signed.with_headers(shopify_hmac_sha256=" ")
    verify(request)
    assert normalize(request).event_type == "orders/paid"


def test_families_are_not_mixed() -> None:
    # A newer HMAC header means the newer family: a legacy topic is not read with it.
    signed = sign("shopify")
    request = signed.with_headers(
        shopify_hmac_sha256=signed.request.headers["x-shopify-hmac-sha256"]
    )
    verify(request)
    with pytest.raises(MalformedEvent):
        normalize(request)


# ---------------------------------------------------------------- what a body is


def test_body_shapes() -> None:
    refund = {"id": 1, "order_id": 2, "created_at": ORDER_CREATED, "transactions": []}
    assert body_shape(samples.shopify_order()) is BodyShape.ORDER
    # An order carrying its refunds (Shopify's REST order JSON) is still an order.
    assert body_shape(samples.shopify_order() | {"refunds": [refund]}) is BodyShape.ORDER
    assert body_shape(refund) is BodyShape.REFUND
    assert body_shape({"id": 1, "email": "jon@example.com"}) is None  # a customer
    assert body_shape(samples.shopify_order() | {"order_id": 2}) is None
    assert body_shape(refund | {"transactions": None}) is None
