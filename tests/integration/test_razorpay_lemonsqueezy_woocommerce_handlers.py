"""Razorpay, Lemon Squeezy and WooCommerce events applied to real PostgreSQL.

Each event is built as the provider sends it, verified and normalized by the
provider module (so its ledger id is the one hookline derives), then applied
through the Applier, as the consumer does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hookline.consumer.apply import Applier
from hookline.database import Connection, Database
from hookline.envelope import Envelope
from hookline.errors import MalformedEvent
from hookline.handlers import lemonsqueezy as _lemonsqueezy_handlers  # noqa: F401 - registers
from hookline.handlers import razorpay as _razorpay_handlers  # noqa: F401 - registers
from hookline.handlers import woocommerce as _woocommerce_handlers  # noqa: F401 - registers
from hookline.handlers.base import Outcome
from hookline.ledger import LedgerStatus
from hookline.providers.base import ApiRead, ProviderApi, WebhookRequest
from hookline.providers.lemonsqueezy import LemonSqueezy
from hookline.providers.razorpay import Razorpay
from hookline.providers.woocommerce import WooCommerce

from tests.support.events import T0
from tests.support.postgres import insert_order

SECRET = "integration-test-secret-fake"


@pytest.fixture
def database_url(emptied_database_url: str) -> str:
    """This module's tests write rows only: one database, emptied before each test."""
    return emptied_database_url


class NoApis:
    """These providers sign their whole body: nothing is ever fetched."""

    def read(self, api: ProviderApi, request: ApiRead, *, deadline: object = None) -> Any:
        raise AssertionError(f"unexpected {api.provider} API read")


@pytest.fixture
def applier(database_url: str) -> Iterator[Applier]:
    database = Database(lambda: database_url)
    yield Applier(database, NoApis(), clock=lambda: T0 + timedelta(hours=1))
    database.discard()


def row(db: Connection, query: str, *params: object) -> dict[str, Any]:
    found = db.execute(query, params).fetchone()
    assert found is not None, query
    return dict(found)


def payment(db: Connection, provider: str, payment_id: str) -> dict[str, Any]:
    return row(
        db,
        "SELECT status, amount, currency, amount_refunded, order_id FROM payments"
        " WHERE provider = %s AND provider_payment_id = %s",
        provider,
        payment_id,
    )


def order_row(db: Connection, order_id: str) -> dict[str, Any]:
    return row(
        db,
        "SELECT status, amount, currency, paid_amount, refunded_amount FROM orders WHERE id = %s",
        order_id,
    )


def ledger(db: Connection, item: Envelope) -> str:
    found = row(
        db,
        "SELECT status FROM webhook_events WHERE provider = %s AND event_id = %s",
        item.provider,
        item.event_id,
    )
    return str(found["status"])


def ledger_count(db: Connection, provider: str) -> int:
    found = row(db, "SELECT count(*) AS n FROM webhook_events WHERE provider = %s", provider)
    return int(found["n"])


def epoch(at: int) -> int:
    return int((T0 + timedelta(seconds=at)).timestamp())


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _hmac(body: bytes) -> bytes:
    return hmac.new(SECRET.encode(), body, hashlib.sha256).digest()


# ---------------------------------------------------------------- razorpay

RAZORPAY = Razorpay()
PAY = "pay_DESlfW9H8K9uqM"


def razorpay_payment(
    status: str, *, amount: int = 50000, order_id: str | None = "order-rzp", refunded: int = 0
) -> dict[str, Any]:
    return {
        "id": PAY,
        "entity": "payment",
        "amount": amount,
        "currency": "INR",
        "status": status,
        "order_id": "order_DESlLckIVRkHWj",
        "amount_refunded": refunded,
        "captured": status in ("captured", "refunded"),
        "notes": {"order_id": order_id} if order_id else [],
    }


def razorpay_event(
    event: str, *, at: int = 0, headers: dict[str, str] | None = None, **entities: Any
) -> Envelope:
    body = encode(
        {
            "entity": "event",
            "account_id": "acc_BFQ7uQEaa7j2z7",
            "event": event,
            "contains": list(entities),
            "payload": {name: {"entity": entity} for name, entity in entities.items()},
            "created_at": epoch(at),
        }
    )
    request = WebhookRequest(
        body=body,
        headers={
            "x-razorpay-signature": _hmac(body).hex(),
            "x-razorpay-event-id": "HBV2dW9ZLlDg5H",
            **(headers or {}),
        },
    )
    RAZORPAY.verify(request, (SECRET,), now=epoch(at), tolerance=300)
    return RAZORPAY.normalize(request, received_at=datetime.now(UTC))


def captured(at: int = 10, headers: dict[str, str] | None = None, **changes: Any) -> Envelope:
    entity = razorpay_payment("captured", **changes)
    return razorpay_event("payment.captured", at=at, headers=headers, payment=entity)


def razorpay_refund(
    refund_id: str, amount: int, *, at: int, payment_refunded: int | None = None
) -> Envelope:
    entities: dict[str, Any] = {
        "refund": {
            "id": refund_id,
            "entity": "refund",
            "amount": amount,
            "currency": "INR",
            "payment_id": PAY,
            "status": "processed",
        }
    }
    if payment_refunded is not None:
        status = "refunded" if payment_refunded >= 50000 else "captured"
        entities["payment"] = razorpay_payment(status, refunded=payment_refunded)
    return razorpay_event("refund.processed", at=at, **entities)


def test_razorpay_captured_payment_pays_the_order_named_in_its_notes(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-rzp", 50000, "INR")
    outcome = applier.apply(captured())
    assert outcome.status is LedgerStatus.APPLIED
    assert payment(db, "razorpay", PAY) == {
        "status": "succeeded",
        "amount": 50000,
        "currency": "INR",
        "amount_refunded": 0,
        "order_id": "order-rzp",
    }
    assert order_row(db, "order-rzp")["status"] == "paid"


def test_razorpay_late_authorized_or_failed_never_moves_a_capture_back(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-rzp", 50000, "INR")
    applier.apply(captured(at=20))
    late = razorpay_event("payment.authorized", at=10, payment=razorpay_payment("authorized"))
    assert applier.apply(late).status is LedgerStatus.STALE
    failed = razorpay_event("payment.failed", at=5, payment=razorpay_payment("failed"))
    assert applier.apply(failed).status is LedgerStatus.STALE
    assert payment(db, "razorpay", PAY)["status"] == "succeeded"
    assert order_row(db, "order-rzp")["status"] == "paid"


def test_razorpay_failed_then_captured_is_paid(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-rzp", 50000, "INR")
    applier.apply(razorpay_event("payment.failed", at=5, payment=razorpay_payment("failed")))
    assert order_row(db, "order-rzp")["status"] == "payment_failed"
    applier.apply(captured(at=10))
    assert order_row(db, "order-rzp")["status"] == "paid"


def test_razorpay_refunds_after_success_partial_then_full(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-rzp", 50000, "INR")
    applier.apply(captured())
    applier.apply(razorpay_refund("rfnd_FP8QHiV938haTz", 20000, at=20, payment_refunded=20000))
    assert order_row(db, "order-rzp") | {"amount": 0} == {
        "status": "partially_refunded",
        "amount": 0,
        "currency": "INR",
        "paid_amount": 50000,
        "refunded_amount": 20000,
    }
    # The second refund's event carries no payment: the refunds are summed.
    applier.apply(razorpay_refund("rfnd_FP8QHiV938haU0", 30000, at=30))
    assert payment(db, "razorpay", PAY)["amount_refunded"] == 50000
    assert payment(db, "razorpay", PAY)["status"] == "refunded"
    assert order_row(db, "order-rzp")["status"] == "refunded"


def test_razorpay_refund_arriving_before_its_capture_ends_the_same(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-rzp", 50000, "INR")
    applier.apply(razorpay_refund("rfnd_FP8QHiV938haTz", 20000, at=20, payment_refunded=20000))
    applier.apply(captured(at=10))
    assert payment(db, "razorpay", PAY)["status"] == "partially_refunded"
    assert order_row(db, "order-rzp")["status"] == "partially_refunded"


def test_razorpay_a_refund_that_failed_leaves_the_money_with_the_shop(
    applier: Applier, db: Connection
) -> None:
    """refund.created carries the payment already counting the pending refund in its
    amount_refunded; refund.failed then carries it without: nothing went back."""
    insert_order(db, "order-rzp", 50000, "INR")
    applier.apply(captured(at=10))
    refund = {
        "id": "rfnd_FP8QHiV938haTz",
        "entity": "refund",
        "amount": 50000,
        "currency": "INR",
        "payment_id": PAY,
        "status": "pending",
    }
    counting = razorpay_payment("refunded", refunded=50000)
    applier.apply(razorpay_event("refund.created", at=20, refund=refund, payment=counting))
    assert order_row(db, "order-rzp")["status"] == "paid"
    failed = refund | {"status": "failed"}
    applier.apply(
        razorpay_event("refund.failed", at=30, refund=failed, payment=razorpay_payment("captured"))
    )
    assert payment(db, "razorpay", PAY)["amount_refunded"] == 0
    assert order_row(db, "order-rzp") | {"amount": 0} == {
        "status": "paid",
        "amount": 0,
        "currency": "INR",
        "paid_amount": 50000,
        "refunded_amount": 0,
    }


@pytest.mark.parametrize("amount", [49999, 50001])
def test_razorpay_amount_mismatch_is_never_paid(
    applier: Applier, db: Connection, amount: int
) -> None:
    insert_order(db, "order-rzp", 50000, "INR")
    outcome = applier.apply(captured(amount=amount))
    assert outcome.amount_mismatch
    assert order_row(db, "order-rzp")["status"] == "amount_mismatch"


def test_razorpay_replay_with_a_fresh_event_id_header_is_a_duplicate(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-rzp", 50000, "INR")
    first = captured()
    assert not applier.apply(first).duplicate
    replayed = captured(headers={"x-razorpay-event-id": "FreshForgedId01"})
    assert replayed.event_id == first.event_id
    again = applier.apply(replayed)
    assert again.duplicate
    assert ledger_count(db, "razorpay") == 1
    assert order_row(db, "order-rzp")["status"] == "paid"


def test_razorpay_order_paid_links_the_receipt(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-receipt", 50000, "INR")
    order = {
        "id": "order_DESlLckIVRkHWj",
        "entity": "order",
        "amount": 50000,
        "amount_paid": 50000,
        "currency": "INR",
        "receipt": "order-receipt",
        "status": "paid",
    }
    paid = razorpay_event(
        "order.paid", at=10, payment=razorpay_payment("captured", order_id=None), order=order
    )
    assert applier.apply(paid).order_id == "order-receipt"
    assert order_row(db, "order-receipt")["status"] == "paid"


def test_razorpay_payment_for_an_unknown_order_is_orphaned(
    applier: Applier, db: Connection
) -> None:
    item = captured(order_id="order-not-yet")
    assert applier.apply(item).status is LedgerStatus.ORPHANED
    assert ledger(db, item) == "orphaned"


def test_razorpay_hostile_amount_is_malformed(applier: Applier) -> None:
    with pytest.raises(MalformedEvent, match=r"payment\.amount"):
        applier.apply(captured(amount=2**63))


# ---------------------------------------------------------------- lemon squeezy

LEMONSQUEEZY = LemonSqueezy()


def ls_event(
    event_name: str,
    status: str,
    *,
    at: int,
    total: int = 1199,
    refunded: int = 0,
    order_id: str | None = "order-ls",
) -> Envelope:
    moment = (T0 + timedelta(seconds=at)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    body = encode(
        {
            "meta": {
                "event_name": event_name,
                "custom_data": {"order_id": order_id} if order_id else None,
            },
            "data": {
                "type": "orders",
                "id": "4521",
                "attributes": {
                    "currency": "USD",
                    "total": total,
                    "refunded_amount": refunded,
                    "status": status,
                    "refunded": status == "refunded",
                    "created_at": T0.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                    "updated_at": moment,
                },
            },
        }
    )
    request = WebhookRequest(
        body=body, headers={"x-signature": _hmac(body).hex(), "x-event-name": event_name}
    )
    LEMONSQUEEZY.verify(request, (SECRET,), now=0, tolerance=300)
    return LEMONSQUEEZY.normalize(request, received_at=datetime.now(UTC))


def test_lemonsqueezy_paid_order_pays_the_shops_order(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-ls", 1199, "usd")
    assert applier.apply(ls_event("order_created", "paid", at=10)).order_status == "paid"
    assert payment(db, "lemonsqueezy", "4521") == {
        "status": "succeeded",
        "amount": 1199,
        "currency": "USD",
        "amount_refunded": 0,
        "order_id": "order-ls",
    }


def test_lemonsqueezy_partial_then_full_refund(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-ls", 1199)
    applier.apply(ls_event("order_created", "paid", at=10))
    applier.apply(ls_event("order_refunded", "partial_refund", at=20, refunded=500))
    assert order_row(db, "order-ls")["status"] == "partially_refunded"
    assert order_row(db, "order-ls")["refunded_amount"] == 500
    applier.apply(ls_event("order_refunded", "refunded", at=30, refunded=1199))
    assert order_row(db, "order-ls")["status"] == "refunded"
    assert payment(db, "lemonsqueezy", "4521")["status"] == "refunded"


def test_lemonsqueezy_late_paid_event_never_undoes_a_refund(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-ls", 1199)
    applier.apply(ls_event("order_refunded", "refunded", at=30, refunded=1199))
    late = ls_event("order_created", "paid", at=10)
    assert applier.apply(late).status is LedgerStatus.STALE
    assert payment(db, "lemonsqueezy", "4521")["status"] == "refunded"
    assert order_row(db, "order-ls")["status"] == "refunded"


def test_lemonsqueezy_amount_mismatch_is_never_paid(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-ls", 999)
    assert applier.apply(ls_event("order_created", "paid", at=10)).amount_mismatch
    assert order_row(db, "order-ls")["status"] == "amount_mismatch"


def test_lemonsqueezy_redelivery_is_a_duplicate(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-ls", 1199)
    item = ls_event("order_created", "paid", at=10)
    assert not applier.apply(item).duplicate
    assert applier.apply(ls_event("order_created", "paid", at=10)).duplicate
    assert ledger_count(db, "lemonsqueezy") == 1


def test_lemonsqueezy_failed_order_fails_the_payment(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-ls", 1199)
    applier.apply(ls_event("order_created", "failed", at=10))
    assert order_row(db, "order-ls")["status"] == "payment_failed"


# ---------------------------------------------------------------- woocommerce

WOOCOMMERCE = WooCommerce()


def wc_order(
    status: str,
    *,
    at: int,
    total: str = "29.35",
    refunds: list[dict[str, Any]] | None = None,
    paid: bool | None = None,
) -> dict[str, Any]:
    moment = (T0 + timedelta(seconds=at)).strftime("%Y-%m-%dT%H:%M:%S")
    is_paid = status in ("processing", "completed", "refunded") if paid is None else paid
    return {
        "id": 727,
        "parent_id": 0,
        "number": "727",
        "order_key": "wc_order_58d2d042d1d",
        "status": status,
        "currency": "USD",
        "total": total,
        "date_created_gmt": T0.strftime("%Y-%m-%dT%H:%M:%S"),
        "date_modified_gmt": moment,
        "date_paid_gmt": moment if is_paid else None,
        "refunds": refunds or [],
    }


def wc_event(body: dict[str, Any], topic: str = "order.updated") -> Envelope:
    raw = encode(body)
    request = WebhookRequest(
        body=raw,
        headers={
            "x-wc-webhook-signature": base64.b64encode(_hmac(raw)).decode(),
            "x-wc-webhook-topic": topic,
            "x-wc-webhook-delivery-id": hashlib.md5(raw + topic.encode()).hexdigest(),  # noqa: S324
        },
    )
    WOOCOMMERCE.verify(request, (SECRET,), now=0, tolerance=300)
    return WOOCOMMERCE.normalize(request, received_at=datetime.now(UTC))


def test_woocommerce_creates_the_order_and_follows_it_to_paid(
    applier: Applier, db: Connection
) -> None:
    applier.apply(wc_event(wc_order("pending", at=0), "order.created"))
    assert order_row(db, "727") == {
        "status": "pending",
        "amount": 2935,
        "currency": "USD",
        "paid_amount": 0,
        "refunded_amount": 0,
    }
    outcome = applier.apply(wc_event(wc_order("processing", at=10)))
    assert outcome.order_status == "paid"
    assert payment(db, "woocommerce", "727") == {
        "status": "succeeded",
        "amount": 2935,
        "currency": "USD",
        "amount_refunded": 0,
        "order_id": "727",
    }


def test_woocommerce_late_pending_never_moves_a_paid_order_back(
    applier: Applier, db: Connection
) -> None:
    applier.apply(wc_event(wc_order("completed", at=20)))
    late = wc_event(wc_order("pending", at=0), "order.created")
    assert applier.apply(late).status is LedgerStatus.STALE
    assert payment(db, "woocommerce", "727")["status"] == "succeeded"
    assert order_row(db, "727")["status"] == "paid"


def test_woocommerce_processing_without_payment_is_not_paid(
    applier: Applier, db: Connection
) -> None:
    # Cash on delivery: processing, date_paid_gmt null.
    applier.apply(wc_event(wc_order("processing", at=10, paid=False)))
    assert payment(db, "woocommerce", "727")["status"] == "processing"
    assert order_row(db, "727")["status"] == "pending"
    applier.apply(wc_event(wc_order("completed", at=20)))
    assert order_row(db, "727")["status"] == "paid"


def test_woocommerce_refund_after_success_partial_then_full(
    applier: Applier, db: Connection
) -> None:
    applier.apply(wc_event(wc_order("processing", at=10)))
    partial = [{"id": 730, "reason": "damaged", "total": "-10.00"}]
    applier.apply(wc_event(wc_order("processing", at=20, refunds=partial)))
    assert order_row(db, "727") | {"amount": 0} == {
        "status": "partially_refunded",
        "amount": 0,
        "currency": "USD",
        "paid_amount": 2935,
        "refunded_amount": 1000,
    }
    full = [{"id": 731, "reason": "", "total": "-19.35"}, *partial]
    applier.apply(wc_event(wc_order("refunded", at=30, refunds=full)))
    assert order_row(db, "727")["status"] == "refunded"
    assert payment(db, "woocommerce", "727")["amount_refunded"] == 2935


def test_woocommerce_refunded_status_without_refund_records_refunds_all(
    applier: Applier, db: Connection
) -> None:
    applier.apply(wc_event(wc_order("processing", at=10)))
    applier.apply(wc_event(wc_order("refunded", at=20)))
    assert order_row(db, "727")["status"] == "refunded"


def test_woocommerce_amount_mismatch_with_the_shops_own_order(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "727", 3000)
    assert applier.apply(wc_event(wc_order("processing", at=10))).amount_mismatch
    assert order_row(db, "727")["status"] == "amount_mismatch"


def test_woocommerce_redelivery_and_relabelled_topic_are_duplicates(
    applier: Applier, db: Connection
) -> None:
    body = wc_order("processing", at=10)
    assert not applier.apply(wc_event(body)).duplicate
    relabelled = wc_event(body, "order.deleted")
    assert applier.apply(relabelled).duplicate
    assert ledger_count(db, "woocommerce") == 1


def test_woocommerce_unhandled_topic_follows_the_signed_body(
    applier: Applier, db: Connection
) -> None:
    # First seen under a topic with no handler of its own: the fallback applies the body.
    outcome = applier.apply(wc_event(wc_order("processing", at=10), "order.restored"))
    assert outcome.status is LedgerStatus.APPLIED
    assert order_row(db, "727")["status"] == "paid"


def test_woocommerce_body_that_is_no_order_is_ignored(applier: Applier, db: Connection) -> None:
    product = {
        "id": 93,
        "status": "publish",
        "date_modified_gmt": "2026-01-01T00:00:00",
        "price": "9.00",
    }
    item = wc_event(product, "order.updated")
    assert applier.apply(item).status is LedgerStatus.IGNORED
    assert ledger(db, item) == "ignored"


def test_woocommerce_cancelled_unpaid_order_is_canceled(applier: Applier, db: Connection) -> None:
    applier.apply(wc_event(wc_order("pending", at=0), "order.created"))
    outcome = applier.apply(wc_event(wc_order("cancelled", at=10)))
    assert outcome.order_status == "canceled"
    assert order_row(db, "727")["status"] == "canceled"


def test_woocommerce_older_cancellation_arriving_late_never_cancels_a_paid_order(
    applier: Applier, db: Connection
) -> None:
    applier.apply(wc_event(wc_order("processing", at=20)))
    outcome: Outcome = applier.apply(wc_event(wc_order("cancelled", at=10)))
    assert outcome.status is LedgerStatus.STALE
    assert order_row(db, "727")["status"] == "paid"


def test_woocommerce_hostile_total_is_malformed(applier: Applier) -> None:
    with pytest.raises(MalformedEvent, match="total"):
        applier.apply(wc_event(wc_order("processing", at=10, total="1e30")))


def test_woocommerce_an_order_edited_before_payment_is_paid_at_its_new_total(
    applier: Applier, db: Connection
) -> None:
    """WooCommerce is the order system: a pending order the admin edits (an item added)
    is worth its new total, and paying that in full pays it."""
    applier.apply(wc_event(wc_order("pending", at=0, total="29.35"), "order.created"))
    applier.apply(wc_event(wc_order("pending", at=10, total="39.35")))
    assert order_row(db, "727")["amount"] == 3935
    # The older body, delivered late, changes nothing.
    applier.apply(wc_event(wc_order("pending", at=5, total="29.35")))
    outcome = applier.apply(wc_event(wc_order("processing", at=20, total="39.35")))
    assert not outcome.amount_mismatch
    assert order_row(db, "727") == {
        "status": "paid",
        "amount": 3935,
        "currency": "USD",
        "paid_amount": 3935,
        "refunded_amount": 0,
    }


def test_woocommerce_a_total_changed_after_payment_is_a_mismatch(
    applier: Applier, db: Connection
) -> None:
    """Once paid, the order keeps the total it was paid at: a larger one later is no
    proof of more money."""
    applier.apply(wc_event(wc_order("processing", at=10, total="29.35")))
    assert applier.apply(wc_event(wc_order("processing", at=20, total="39.35"))).amount_mismatch
    assert order_row(db, "727")["amount"] == 2935


def test_woocommerce_cancelled_then_paid_late_is_paid(applier: Applier, db: Connection) -> None:
    """Hold-stock cancels an unpaid order; the gateway's late success reopens it
    (cancelled -> processing, date_paid_gmt set): the money was taken for it."""
    applier.apply(wc_event(wc_order("pending", at=0), "order.created"))
    applier.apply(wc_event(wc_order("cancelled", at=3600)))
    # A paid body older than the cancellation, delivered late, reopens nothing.
    applier.apply(wc_event(wc_order("processing", at=100)))
    assert order_row(db, "727")["status"] == "canceled"
    outcome = applier.apply(wc_event(wc_order("processing", at=3700)))
    assert (outcome.status, outcome.order_status) == (LedgerStatus.APPLIED, "paid")
    assert payment(db, "woocommerce", "727")["status"] == "succeeded"
    assert order_row(db, "727")["status"] == "paid"


def test_razorpay_a_pending_refund_counted_in_another_refund_s_payment_is_not_money(
    applier: Applier, db: Connection
) -> None:
    """R1 (20000) is created, still pending; R2 (10000) is processed, and the payment it
    carries says amount_refunded 30000, which counts R1. R1 then fails: 10000 went back."""

    def refund_event(name: str, refund_id: str, amount: int, status: str, at: int, carried: int):  # type: ignore[no-untyped-def]
        refund = {
            "id": refund_id,
            "entity": "refund",
            "amount": amount,
            "currency": "INR",
            "payment_id": "pay_DESlfW9H8K9uqM",
            "status": status,
        }
        carried_payment = razorpay_payment("captured", refunded=carried)
        return razorpay_event(name, at=at, refund=refund, payment=carried_payment)

    insert_order(db, "order-rzp", 50000, "INR")
    applier.apply(captured())
    applier.apply(refund_event("refund.created", "rfnd_R1", 20000, "pending", 20, 20000))
    applier.apply(refund_event("refund.processed", "rfnd_R2", 10000, "processed", 30, 30000))
    applier.apply(refund_event("refund.failed", "rfnd_R1", 20000, "failed", 40, 10000))
    row = db.execute(
        "SELECT amount_refunded FROM payments WHERE provider_payment_id = 'pay_DESlfW9H8K9uqM'"
    ).fetchone()
    assert row is not None
    assert row["amount_refunded"] == 10000
