"""Only signed facts move money (issue 11, items 1 and 2), end to end.

Real receiver handler → moto SQS → real consumer handler → real PostgreSQL,
with Mercado Pago's API served over HTTP by the provider sandbox. A captured
genuine delivery is re-sent the way an attacker can: the signed part unchanged,
everything unsigned (Shopify's topic and ids, Mercado Pago's body) changed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
from hookline.database import Connection
from hookline.local.sandbox import ProviderSandbox, mercadopago_payment
from hookline.providers import WebhookRequest

from tests.support import samples
from tests.support.apigw import webhook_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order
from tests.support.signers import SECRETS, sign
from tests.support.stack import Stack, load_function

RECEIVER = load_function("receiver")
ORDER_ID = "820982911946154508"  # samples.shopify_order's id
CREATED = "2026-11-20T16:15:47-04:00"


@pytest.fixture
def database_url(emptied_database_url: str) -> str:
    """This module's tests write rows only: one database, emptied before each test."""
    return emptied_database_url


def post(provider: str, request: WebhookRequest) -> tuple[int, dict[str, Any]]:
    answer = RECEIVER.lambda_handler(webhook_event(provider, request), FakeLambdaContext())
    return int(answer["statusCode"]), json.loads(answer["body"])


def state(db: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every domain row, every column (updated_at included): "exactly as it was"."""
    return {
        table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()  # noqa: S608
        for table in ("orders", "payments", "refunds")
    }


def ledger(db: Connection, provider: str) -> dict[str, str]:
    rows = db.execute(
        "SELECT event_id, status FROM webhook_events WHERE provider = %s", (provider,)
    ).fetchall()
    return {row["event_id"]: row["status"] for row in rows}


def parked(db: Connection) -> list[str]:
    return [row["event_id"] for row in db.execute("SELECT event_id FROM parked_events").fetchall()]


# ---------------------------------------------------------------- Shopify


def order(financial_status: str, **changes: Any) -> dict[str, Any]:
    body = samples.shopify_order() | {
        "financial_status": financial_status,
        "cancelled_at": None,
        "updated_at": CREATED,
    }
    return body | changes


def refund(amount: str) -> dict[str, Any]:
    return {
        "id": 509562969,
        "order_id": int(ORDER_ID),
        "created_at": "2026-11-21T10:00:00-04:00",
        "processed_at": "2026-11-21T10:00:00-04:00",
        "transactions": [
            {
                "id": 179259969,
                "order_id": int(ORDER_ID),
                "kind": "refund",
                "status": "success",
                "amount": amount,
                "currency": "USD",
            }
        ],
    }


def delivery(body: dict[str, Any], topic: str, event_id: str | None = None) -> WebhookRequest:
    """A genuine delivery: Shopify's signature over the body, its headers."""
    request = relabelled(sign("shopify", body=samples.encode(body)).request, topic)
    return request if event_id is None else labelled(request, topic, event_id)


def labelled(captured: WebhookRequest, topic: str, event_id: str) -> WebhookRequest:
    """The delivery, body and signature untouched, under `topic` and `event_id`."""
    return replace(
        captured,
        headers={**captured.headers, "x-shopify-topic": topic, "x-shopify-event-id": event_id},
    )


def relabelled(captured: WebhookRequest, topic: str) -> WebhookRequest:
    """The captured delivery, body and signature untouched, under a new topic and new ids."""
    return replace(
        captured,
        headers={
            **captured.headers,
            "x-shopify-topic": topic,
            "x-shopify-event-id": str(uuid.uuid4()),
            "x-shopify-webhook-id": str(uuid.uuid4()),
            "x-shopify-triggered-at": "2031-01-01T00:00:00.000Z",
        },
    )


def deliver(pipeline: Pipeline, request: WebhookRequest) -> str:
    status, answer = post("shopify", request)
    assert status == 200, answer
    pipeline.drain()
    return str(answer["event_id"])


@pytest.mark.parametrize("topic", ["orders/paid", "orders/cancelled", "orders/updated"])
def test_a_pending_order_re_sent_under_another_topic_stays_as_it_was(
    pipeline: Pipeline, db: Connection, topic: str
) -> None:
    captured = delivery(order("pending"), "orders/create")
    deliver(pipeline, captured)
    before = state(db)
    assert before["orders"][0]["status"] == "pending"

    replay = deliver(pipeline, relabelled(captured, topic))

    assert state(db) == before
    # Recorded under its (unsigned) id, changing nothing: the same pending status
    # reported again is a no-op the ledger calls applied (payments.is_stale).
    assert ledger(db, "shopify")[replay] == "applied"
    assert parked(db) == []


@pytest.mark.parametrize("topic", ["orders/paid", "orders/cancelled", "orders/create"])
def test_a_refund_re_sent_under_an_order_topic_changes_nothing(
    pipeline: Pipeline, db: Connection, topic: str
) -> None:
    deliver(pipeline, delivery(order("paid"), "orders/paid"))
    captured = delivery(refund("5.00"), "refunds/create")
    deliver(pipeline, captured)
    before = state(db)
    assert before["orders"][0]["status"] == "partially_refunded"

    replay = deliver(pipeline, relabelled(captured, topic))

    assert state(db) == before
    # The body is what it is, whatever the topic: a refund already counted, so stale.
    assert ledger(db, "shopify")[replay] == "stale"
    assert parked(db) == []


def test_an_order_re_sent_as_a_refund_changes_nothing(pipeline: Pipeline, db: Connection) -> None:
    captured = delivery(order("paid"), "orders/paid")
    deliver(pipeline, captured)
    before = state(db)

    replay = deliver(pipeline, relabelled(captured, "refunds/create"))

    assert state(db) == before
    assert ledger(db, "shopify")[replay] == "applied"
    assert parked(db) == []


def test_a_body_that_is_no_order_is_never_applied_as_one(
    pipeline: Pipeline, db: Connection
) -> None:
    # A genuine checkouts/create body has a total and a currency but is no order.
    checkout = {
        "id": 901414060,
        "token": "exuw7apwoycchjuwtiqg8nytfhphr62a",
        "currency": "USD",
        "total_price": "20.00",
        "created_at": CREATED,
        "updated_at": CREATED,
    }
    captured = delivery(checkout, "checkouts/create")
    deliver(pipeline, captured)
    assert ledger(db, "shopify") == {captured.headers["x-shopify-event-id"]: "ignored"}

    replay = deliver(pipeline, relabelled(captured, "orders/paid"))

    assert state(db) == {"orders": [], "payments": [], "refunds": []}
    # Not the body's fault that an unsigned topic promised an order: ignored, not parked.
    assert ledger(db, "shopify")[replay] == "ignored"
    assert parked(db) == []


@pytest.mark.parametrize("topic", ["orders/paid", "orders/cancelled", "refunds/create"])
def test_a_captured_body_of_another_kind_under_an_order_topic_is_ignored_not_parked(
    pipeline: Pipeline, db: Connection, topic: str
) -> None:
    # A genuine orders/delete body names the order and nothing else. Re-sent under an
    # order or refund topic it used to fail three times, blocking the order's FIFO
    # group each time, then park and page: a stream of those stalls the order.
    deliver(pipeline, delivery(order("paid"), "orders/paid"))
    captured = delivery({"id": int(ORDER_ID)}, "orders/delete")
    deliver(pipeline, captured)
    before = state(db)

    replay = deliver(pipeline, relabelled(captured, topic))

    assert state(db) == before
    assert ledger(db, "shopify")[replay] == "ignored"
    assert parked(db) == []
    assert before["orders"][0]["status"] == "paid"


REFUNDED_AT = "2026-11-21T10:00:00-04:00"  # refund()'s created_at
LATER = "2026-11-22T10:00:00-04:00"


@pytest.mark.parametrize("first", ["orders/updated", "refunds/create"])
@pytest.mark.parametrize(
    ("amount", "refunded", "status"),
    [("5.00", 500, "partially_refunded"), ("20.00", 2000, "refunded")],
    ids=["partial", "full"],
)
def test_an_order_update_and_its_refund_sharing_one_event_id_record_the_refund(
    pipeline: Pipeline, db: Connection, first: str, amount: str, refunded: int, status: str
) -> None:
    # One merchant refund: Shopify sends orders/updated (the order, its refunds in
    # `refunds`) and refunds/create with ONE event id, in two FIFO groups. The ledger
    # keeps whichever comes first; either one must record the refund.
    deliver(pipeline, delivery(order("paid"), "orders/paid"))
    updated = order(status, updated_at=REFUNDED_AT, refunds=[refund(amount)])
    bodies = {"orders/updated": updated, "refunds/create": refund(amount)}
    shared = str(uuid.uuid4())
    second = next(topic for topic in bodies if topic != first)

    ids = [deliver(pipeline, delivery(bodies[topic], topic, shared)) for topic in (first, second)]
    # A later order update carries the same refund again: still counted once.
    deliver(pipeline, delivery(updated | {"updated_at": LATER}, "orders/fulfilled"))

    assert ids == [shared, shared]
    assert ledger(db, "shopify")[shared] == "applied"
    rows = state(db)
    assert (rows["orders"][0]["status"], rows["orders"][0]["refunded_amount"]) == (
        status,
        refunded,
    )
    assert [(r["provider_refund_id"], r["status"], r["amount"]) for r in rows["refunds"]] == [
        ("509562969", "succeeded", refunded)
    ]
    assert parked(db) == []


def test_a_refund_first_seen_pending_in_an_order_counts_once_it_succeeds(
    pipeline: Pipeline, db: Connection
) -> None:
    deliver(pipeline, delivery(order("paid"), "orders/paid"))
    pending = refund("5.00")
    pending["transactions"] = [pending["transactions"][0] | {"status": "pending"}]
    deliver(
        pipeline,
        delivery(order("paid", updated_at=REFUNDED_AT, refunds=[pending]), "orders/updated"),
    )
    assert state(db)["orders"][0]["refunded_amount"] == 0

    later = order("partially_refunded", updated_at=LATER, refunds=[refund("5.00")])
    deliver(pipeline, delivery(later, "orders/updated"))

    row = state(db)["orders"][0]
    assert (row["status"], row["refunded_amount"]) == ("partially_refunded", 500)


LATEST = "2026-11-23T10:00:00-04:00"


def refund_leg(leg_id: int, amount: str, status: str = "success", currency: str = "USD") -> Any:
    return {
        "id": leg_id,
        "order_id": int(ORDER_ID),
        "kind": "refund",
        "status": status,
        "amount": amount,
        "currency": currency,
    }


def refund_of(refund_id: int, *legs: dict[str, Any]) -> dict[str, Any]:
    return refund("0.00") | {"id": refund_id, "transactions": list(legs)}


def test_a_refund_paid_back_in_two_legs_counts_the_leg_that_settles_later(
    pipeline: Pipeline, db: Connection
) -> None:
    deliver(pipeline, delivery(order("paid"), "orders/paid"))
    half = refund_of(1, refund_leg(11, "5.00"), refund_leg(12, "5.00", "pending"))
    whole = refund_of(1, refund_leg(11, "5.00"), refund_leg(12, "5.00"))
    for updated_at, refund_body in ((LATER, half), (LATEST, whole), (LATER, half)):
        body = order("partially_refunded", updated_at=updated_at, refunds=[refund_body])
        deliver(pipeline, delivery(body, "orders/updated"))
    # The older view (one leg) arriving last does not shrink it back.
    assert state(db)["orders"][0]["refunded_amount"] == 1000


def test_a_refund_seen_without_transactions_counts_once_they_succeed(
    pipeline: Pipeline, db: Connection
) -> None:
    deliver(pipeline, delivery(order("paid"), "orders/paid"))
    unsettled = order("paid", updated_at=LATER, refunds=[refund_of(2)])
    deliver(pipeline, delivery(unsettled, "orders/updated"))
    assert state(db)["orders"][0]["refunded_amount"] == 0
    settled_refund = refund_of(2, refund_leg(21, "5.00"))
    settled = order("partially_refunded", updated_at=LATEST, refunds=[settled_refund])
    deliver(pipeline, delivery(settled, "orders/updated"))
    assert state(db)["orders"][0]["refunded_amount"] == 500


def test_a_refund_whose_only_leg_failed_is_recorded_failed(
    pipeline: Pipeline, db: Connection
) -> None:
    deliver(pipeline, delivery(order("paid"), "orders/paid"))
    deliver(pipeline, delivery(refund_of(3, refund_leg(31, "5.00", "pending")), "refunds/create"))
    failed_refund = refund_of(3, refund_leg(31, "5.00", "failure"))
    failed = order("paid", updated_at=LATER, refunds=[failed_refund])
    deliver(pipeline, delivery(failed, "orders/updated"))
    rows = state(db)
    assert [(r["status"], r["amount"]) for r in rows["refunds"]] == [("failed", 0)]
    assert rows["orders"][0]["refunded_amount"] == 0


def test_a_refund_in_two_currencies_is_never_summed(pipeline: Pipeline, db: Connection) -> None:
    deliver(pipeline, delivery(order("paid"), "orders/paid"))
    mixed = refund_of(4, refund_leg(41, "10.00"), refund_leg(42, "1000", currency="JPY"))
    deliver(pipeline, delivery(mixed, "refunds/create"))
    rows = state(db)
    assert rows["refunds"] == []
    assert rows["orders"][0]["refunded_amount"] == 0


@pytest.mark.parametrize("unhandled", ["app/uninstalled", "orders/delete", "no/such-topic"])
@pytest.mark.parametrize(
    ("body", "topic", "status"),
    [(order("paid"), "orders/paid", "paid"), (refund("5.00"), "refunds/create", None)],
    ids=["order", "refund"],
)
def test_a_delivery_first_re_sent_under_an_unhandled_topic_still_applies(
    pipeline: Pipeline,
    db: Connection,
    unhandled: str,
    body: dict[str, Any],
    topic: str,
    status: str | None,
) -> None:
    # An attacker holding a genuine delivery posts it first under a topic hookline
    # has no handler for: its event id is then taken in the ledger, and the genuine
    # delivery is a duplicate. The body it carried must still apply.
    if topic == "refunds/create":
        deliver(pipeline, delivery(order("paid"), "orders/paid"))
    genuine = delivery(body, topic)
    event_id = genuine.headers["x-shopify-event-id"]

    deliver(pipeline, labelled(genuine, unhandled, event_id))
    deliver(pipeline, genuine)

    assert ledger(db, "shopify")[event_id] == "applied"
    row = state(db)["orders"][0]
    if status == "paid":
        assert (row["status"], row["paid_amount"]) == ("paid", 2000)
    else:
        assert (row["status"], row["refunded_amount"]) == ("partially_refunded", 500)
    assert parked(db) == []


def test_only_the_bodys_cancelled_at_cancels_and_any_order_topic_applies_it(
    pipeline: Pipeline, db: Connection
) -> None:
    deliver(pipeline, delivery(order("paid"), "orders/paid"))
    deliver(pipeline, delivery(order("paid"), "orders/cancelled"))  # no cancelled_at
    assert state(db)["orders"][0]["status"] == "paid"

    moment = "2026-11-22T09:00:00-04:00"
    cancelled = order("paid", cancelled_at=moment, updated_at=moment)
    deliver(pipeline, delivery(cancelled, "orders/updated"))

    assert state(db)["orders"][0]["status"] == "canceled"


def test_the_newer_lower_case_header_names_are_applied(pipeline: Pipeline, db: Connection) -> None:
    genuine = delivery(order("paid"), "orders/paid")
    newer = replace(
        genuine,
        headers={name.removeprefix("x-"): value for name, value in genuine.headers.items()},
    )
    event_id = deliver(pipeline, newer)
    assert event_id == genuine.headers["x-shopify-event-id"]
    assert ledger(db, "shopify") == {event_id: "applied"}
    assert state(db)["orders"][0]["status"] == "paid"


# ---------------------------------------------------------------- Mercado Pago

MP_PAYMENT = "1234567890"  # the data.id tests/support/signers signs
MP_REQUEST_ID = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"


def test_one_mercadopago_signature_with_ten_bodies_is_one_event_and_one_fetch(
    pipeline: Pipeline, db: Connection, mercadopago_api: ProviderSandbox
) -> None:
    insert_order(db, "order-mp-1", 10050, "BRL")
    mercadopago_api.payments[MP_PAYMENT] = mercadopago_payment(
        MP_PAYMENT, "approved", "100.50", external_reference="order-mp-1"
    )
    genuine = sign("mercadopago", timestamp=int(time.time()))
    bodies = [
        samples.mercadopago_event(event_id=112233445566 + n)
        | {"date_created": f"2026-11-{10 + n}T13:01:08.000-03:00", "action": f"payment.{n}"}
        for n in range(10)
    ]
    answers = [post("mercadopago", genuine.with_body(samples.encode(body))) for body in bodies]

    pipeline.drain()

    event_id = f"{MP_PAYMENT}:{MP_REQUEST_ID}"
    assert ledger(db, "mercadopago") == {event_id: "applied"}
    assert mercadopago_api.requests == [f"/v1/payments/{MP_PAYMENT}"]
    assert answers == [(200, {"received": True, "event_id": event_id})] * 10
    assert state(db)["orders"][0]["status"] == "paid"


def test_a_year_old_mercadopago_signature_is_refused(stack: Stack) -> None:
    old = sign("mercadopago", timestamp=int(time.time()) - 365 * 86_400)
    assert post("mercadopago", old.request)[0] == 401
    assert stack.messages() == []


def test_a_smuggled_mercadopago_data_id_is_refused(stack: Stack) -> None:
    # The genuine manifest `id:P;request-id:R;ts:T;` read as data.id `P;request-id:R`
    # and no request id; the unsigned body agrees with whatever the query says.
    genuine = sign("mercadopago", timestamp=int(time.time())).request
    data_id = f"{MP_PAYMENT};request-id:{MP_REQUEST_ID}"
    smuggled = replace(
        genuine,
        body=samples.encode(samples.mercadopago_event(payment_id=data_id)),
        headers={"x-signature": genuine.headers["x-signature"]},
        query={"data.id": data_id, "type": "payment"},
    )
    assert post("mercadopago", smuggled)[0] == 401
    assert stack.messages() == []


def test_a_mercadopago_notification_without_a_signed_data_id_is_refused(stack: Stack) -> None:
    # Genuinely signed (the SDK accepts a manifest without an id), but nothing signed
    # names the payment, so it cannot be given an identity: 400, nothing queued.
    ts = str(int(time.time()))
    manifest = f"request-id:{MP_REQUEST_ID};ts:{ts};".encode()
    digest = hmac.new(SECRETS["mercadopago"][0].encode(), manifest, hashlib.sha256).hexdigest()
    request = WebhookRequest(
        body=samples.encode(samples.mercadopago_event()),
        headers={"x-signature": f"ts={ts},v1={digest}", "x-request-id": MP_REQUEST_ID},
    )
    assert post("mercadopago", request)[0] == 400
    assert stack.messages() == []
