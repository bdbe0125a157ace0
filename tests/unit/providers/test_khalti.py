"""Khalti: an unsigned return_url callback, refused only when it cannot name a payment.

Nothing is signed, so verify() accepts anything; normalize() is where a body that
names no pidx becomes a 400, and where each delivery gets its own identity.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hookline.errors import MalformedEvent
from hookline.providers.base import WebhookRequest
from hookline.providers.khalti import Khalti, lookup_read

PROVIDER = Khalti()
RECEIVED_AT = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
# Khalti's documented success callback (docs.khalti.com, "Payment Success Callback").
CALLBACK = (
    "pidx=bZQLD9wRVWo4CdESSfuSsB&txnId=4H7AhoXDJWg5WjrcPT9ixW&amount=10000"
    "&total_amount=10000&status=Completed&mobile=98XXXXX904&tidx=4H7AhoXDJWg5WjrcPT9ixW"
    "&purchase_order_id=test12&purchase_order_name=test"
    "&transaction_id=4H7AhoXDJWg5WjrcPT9ixW"
)


def normalize(request: WebhookRequest, at: datetime = RECEIVED_AT) -> object:
    return PROVIDER.normalize(request, received_at=at)


def test_the_forwarded_query_string_is_a_thin_event_keyed_by_pidx() -> None:
    request = WebhookRequest(body=CALLBACK.encode())
    PROVIDER.verify(request, ("khalti-secret-key-fake",), now=0, tolerance=300)
    envelope = PROVIDER.normalize(request, received_at=RECEIVED_AT)
    assert envelope.object_id == "bZQLD9wRVWo4CdESSfuSsB"
    assert envelope.event_type == "payment"
    assert envelope.event_id == "bZQLD9wRVWo4CdESSfuSsB:2026-11-20T10:00:00.123456Z"
    assert envelope.occurred_at is None
    body = json.loads(envelope.body)
    assert body["pidx"] == "bZQLD9wRVWo4CdESSfuSsB"
    assert body["purchase_order_id"] == "test12"  # kept for operators, never applied


def test_the_parameters_may_come_in_the_query_string_with_no_body() -> None:
    query = dict(pair.split("=", 1) for pair in CALLBACK.split("&"))
    envelope = PROVIDER.normalize(WebhookRequest(body=b"", query=query), received_at=RECEIVED_AT)
    assert envelope.object_id == "bZQLD9wRVWo4CdESSfuSsB"


def test_a_second_forward_of_the_same_callback_is_another_event() -> None:
    """After a Pending lookup the customer may return: that delivery must be looked up again."""
    request = WebhookRequest(body=CALLBACK.encode())
    first = PROVIDER.normalize(request, received_at=RECEIVED_AT)
    again = PROVIDER.normalize(request, received_at=RECEIVED_AT + timedelta(microseconds=1))
    assert first.event_id != again.event_id
    assert first.object_id == again.object_id


def test_a_canceled_callback_with_blank_fields_is_accepted() -> None:
    body = (
        "pidx=bZQLD9wRVWo4CdESSfuSsB&transaction_id=&tidx=&amount=10000&total_amount=10000"
        "&mobile=&status=User%20canceled&purchase_order_id=test12&purchase_order_name=test"
    )
    envelope = PROVIDER.normalize(WebhookRequest(body=body.encode()), received_at=RECEIVED_AT)
    assert json.loads(envelope.body)["status"] == "User canceled"


@pytest.mark.parametrize(
    "body",
    [
        b"status=Completed&amount=10000",  # no pidx
        b"pidx=",
        b"pidx=abc:def",  # not Khalti's alphabet
        b"pidx=" + b"a" * 65,
        b"pidx=abc%00",
        b"pidx=a&pidx=b",  # which one?
        b"\xff\xfe",
        b"&".join(b"f%d=1" % n for n in range(60)) + b"&pidx=abc",
    ],
)
def test_a_callback_that_names_no_single_khalti_pidx_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        PROVIDER.normalize(WebhookRequest(body=body), received_at=RECEIVED_AT)


def test_the_lookup_posts_the_pidx() -> None:
    read = lookup_read("bZQLD9wRVWo4CdESSfuSsB")
    assert read.path == ("epayment", "lookup", "")
    assert read.body == {"pidx": "bZQLD9wRVWo4CdESSfuSsB"}
    with pytest.raises(MalformedEvent):
        lookup_read("../admin")
