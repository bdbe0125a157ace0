"""Applying events to real PostgreSQL: the domain rules, through the Applier."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hookline.clients.mercadopago import MercadoPagoApi
from hookline.consumer.apply import Applier
from hookline.database import Connection, Database
from hookline.envelope import Envelope
from hookline.errors import (
    ConfigurationError,
    MalformedEvent,
    ProviderApiUnavailable,
    ResourceNotFound,
)
from hookline.ledger import LedgerStatus
from hookline.local.sandbox import ProviderSandbox, mercadopago_payment
from hookline.orphans import settle

from tests.conftest import MERCADOPAGO_TOKEN
from tests.support import events
from tests.support.events import T0
from tests.support.postgres import insert_order


@pytest.fixture
def applier(database_url: str, mercadopago_api: ProviderSandbox) -> Iterator[Applier]:
    database = Database(lambda: database_url)
    yield Applier(
        database,
        MercadoPagoApi(lambda: MERCADOPAGO_TOKEN, mercadopago_api.mercadopago_url, retries=0),
        clock=lambda: T0 + timedelta(hours=1),
    )
    database.discard()


def row(db: Connection, query: str, *params: object) -> dict[str, object]:
    found = db.execute(query, params).fetchone()
    assert found is not None, query
    return found


def ledger(db: Connection, item: Envelope) -> dict[str, object]:
    return row(
        db,
        "SELECT status, attempts, last_error, order_id FROM webhook_events"
        " WHERE provider = %s AND event_id = %s",
        item.provider,
        item.event_id,
    )


def payment(db: Connection, provider: str, payment_id: str) -> dict[str, object]:
    return row(
        db,
        "SELECT status, amount, currency, amount_refunded, order_id FROM payments"
        " WHERE provider = %s AND provider_payment_id = %s",
        provider,
        payment_id,
    )


def order_row(db: Connection, order_id: str) -> dict[str, object]:
    return row(
        db, "SELECT status, paid_amount, refunded_amount FROM orders WHERE id = %s", order_id
    )


LIFECYCLE = ("payment_intent.created", "payment_intent.processing", "payment_intent.succeeded")


@pytest.mark.parametrize(("refunded", "final"), [(2000, "refunded"), (700, "partially_refunded")])
def test_every_permutation_of_a_lifecycle_ends_in_the_same_state(
    applier: Applier, db: Connection, refunded: int, final: str
) -> None:
    steps = [*LIFECYCLE, "charge.refunded"]
    for number, permutation in enumerate(itertools.permutations(range(4))):
        intent, order_id = f"pi_perm_{number}", f"order-perm-{number}"
        insert_order(db, order_id, 2000)
        lifecycle = [
            events.stripe(steps[i], intent=intent, order_id=order_id, refunded=refunded, at=i * 10)
            for i in range(4)
        ]
        for index in permutation:
            applier.apply(lifecycle[index])
        assert payment(db, "stripe", intent) == {
            "status": final,
            "amount": 2000,
            "currency": "USD",
            "amount_refunded": refunded,
            "order_id": order_id,
        }, permutation
        assert order_row(db, order_id) == {
            "status": final,
            "paid_amount": 2000,
            "refunded_amount": refunded,
        }, permutation


def test_a_late_event_is_recorded_stale_and_changes_nothing(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-1001", 2000)
    succeeded = events.stripe("payment_intent.succeeded", at=20)
    late = events.stripe("payment_intent.processing", at=10)
    assert applier.apply(succeeded).status is LedgerStatus.APPLIED
    assert applier.apply(late).status is LedgerStatus.STALE
    assert ledger(db, late)["status"] == "stale"
    assert payment(db, "stripe", "pi_3QAbc2eZvKYlo2C1")["status"] == "succeeded"
    assert order_row(db, "order-1001")["status"] == "paid"


def test_a_failed_attempt_then_success_is_paid(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-1001", 2000)
    applier.apply(events.stripe("payment_intent.payment_failed", at=10))
    assert order_row(db, "order-1001")["status"] == "payment_failed"
    applier.apply(events.stripe("payment_intent.succeeded", at=20))
    assert order_row(db, "order-1001")["status"] == "paid"


def test_refunds_after_success_partial_then_full(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-1001", 2000)
    applier.apply(events.stripe("payment_intent.succeeded", at=10))
    applier.apply(events.stripe("charge.refunded", refunded=500, at=20))
    assert order_row(db, "order-1001") == {
        "status": "partially_refunded",
        "paid_amount": 2000,
        "refunded_amount": 500,
    }
    applier.apply(events.stripe("charge.refunded", refunded=2000, at=30))
    assert order_row(db, "order-1001")["status"] == "refunded"
    assert payment(db, "stripe", "pi_3QAbc2eZvKYlo2C1")["amount_refunded"] == 2000


def test_an_older_partial_refund_arriving_last_is_stale(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-1001", 2000)
    applier.apply(events.stripe("payment_intent.succeeded", at=10))
    applier.apply(events.stripe("charge.refunded", refunded=2000, at=30))
    older = events.stripe("charge.refunded", refunded=500, at=20)
    assert applier.apply(older).status is LedgerStatus.STALE
    assert payment(db, "stripe", "pi_3QAbc2eZvKYlo2C1")["amount_refunded"] == 2000


def test_checkout_session_links_the_order(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-cs", 4200, "eur")
    outcome = applier.apply(
        events.stripe(
            "checkout.session.completed",
            intent="pi_cs",
            amount=4200,
            currency="eur",
            order_id="order-cs",
        )
    )
    assert outcome.status is LedgerStatus.APPLIED
    assert order_row(db, "order-cs")["status"] == "paid"  # "eur" order, "EUR" payment


@pytest.mark.parametrize(
    ("amount", "currency"), [(1999, "usd"), (2001, "usd"), (2000, "eur")], ids=str
)
def test_amount_or_currency_mismatch_is_never_paid(
    applier: Applier, db: Connection, amount: int, currency: str
) -> None:
    insert_order(db, "order-1001", 2000, "USD")
    outcome = applier.apply(
        events.stripe("payment_intent.succeeded", amount=amount, currency=currency)
    )
    assert outcome.amount_mismatch
    assert order_row(db, "order-1001")["status"] == "amount_mismatch"


def test_unknown_type_is_ignored(applier: Applier, db: Connection) -> None:
    item = events.envelope("stripe", "customer.created", "cus_1", {"id": "evt_c", "data": {}})
    assert applier.apply(item).status is LedgerStatus.IGNORED
    assert ledger(db, item)["status"] == "ignored"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"data": {"object": {"id": "pi_1", "amount": "20.00", "currency": "usd"}}}, "amount"),
        ({"data": {"object": {"id": "pi_1", "amount": 2000, "currency": "dollars"}}}, "currency"),
        ({"data": {"object": {"amount": 2000, "currency": "usd"}}}, "data.object.id"),
        ({"data": []}, "data.object"),
    ],
)
def test_a_malformed_payload_fails_with_its_reason_recorded(
    applier: Applier, db: Connection, payload: dict[str, object], message: str
) -> None:
    item = events.envelope("stripe", "payment_intent.succeeded", "pi_1", payload)
    with pytest.raises(MalformedEvent, match=message):
        applier.apply(item)
    recorded = ledger(db, item)
    assert recorded["status"] == "failed"
    assert recorded["attempts"] == 1
    assert message in str(recorded["last_error"])
    assert db.execute("SELECT count(*) AS n FROM payments").fetchone() == {"n": 0}
    with pytest.raises(MalformedEvent):
        applier.apply(item)
    assert ledger(db, item)["attempts"] == 2


def test_a_redelivered_event_is_a_no_op(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-1001", 2000)
    item = events.stripe("payment_intent.succeeded")
    assert not applier.apply(item).duplicate
    again = applier.apply(item)
    assert again.duplicate
    assert again.status is LedgerStatus.APPLIED
    assert ledger(db, item)["attempts"] == 1


def test_orphan_is_applied_to_the_payment_and_settled_once_the_order_exists(
    applier: Applier, db: Connection
) -> None:
    first = events.stripe("payment_intent.succeeded", order_id="order-late", at=10)
    refund = events.stripe("charge.refunded", order_id="order-late", refunded=300, at=20)
    assert applier.apply(first).status is LedgerStatus.ORPHANED
    assert applier.apply(refund).status is LedgerStatus.ORPHANED
    assert payment(db, "stripe", "pi_3QAbc2eZvKYlo2C1")["status"] == "partially_refunded"
    assert ledger(db, first)["order_id"] == "order-late"

    result = settle(db, now=T0 + timedelta(hours=1), deadline=timedelta(hours=72))
    assert (result.settled, result.parked, result.waiting) == (0, 0, 1)

    insert_order(db, "order-late", 2000)
    result = settle(db, now=T0 + timedelta(hours=1), deadline=timedelta(hours=72))
    assert result.settled == 2
    assert order_row(db, "order-late") == {
        "status": "partially_refunded",
        "paid_amount": 2000,
        "refunded_amount": 300,
    }
    assert ledger(db, first)["status"] == "applied"
    assert ledger(db, refund)["status"] == "applied"


def test_orphans_past_the_deadline_are_parked(applier: Applier, db: Connection) -> None:
    item = events.stripe("payment_intent.succeeded", order_id="order-never")
    applier.apply(item)
    result = settle(db, now=T0 + timedelta(hours=73), deadline=timedelta(hours=72))
    assert result.parked == 1
    assert ledger(db, item)["status"] == "parked"
    parked = row(db, "SELECT reason, payload->>'id' AS id, resolved_at FROM parked_events")
    assert parked == {"reason": "orphan_deadline", "id": item.event_id, "resolved_at": None}


def test_an_event_already_past_the_deadline_is_parked_on_arrival(
    database_url: str, db: Connection, mercadopago_api: ProviderSandbox
) -> None:
    late_applier = Applier(
        Database(lambda: database_url),
        MercadoPagoApi(lambda: MERCADOPAGO_TOKEN, mercadopago_api.mercadopago_url),
        clock=lambda: T0 + timedelta(days=4),
    )
    item = events.stripe("payment_intent.succeeded", order_id="order-never")
    assert late_applier.apply(item).status is LedgerStatus.PARKED
    assert ledger(db, item)["status"] == "parked"


def test_square_payment_and_refunds(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-2001", 1500)
    applier.apply(events.square_payment("APPROVED", created=True, at=0))
    applier.apply(events.square_payment("COMPLETED", at=10))
    assert order_row(db, "order-2001")["status"] == "paid"
    applier.apply(events.square_refund("PENDING", created=True, at=20))
    assert order_row(db, "order-2001")["status"] == "paid"  # pending refunds are not money back
    applier.apply(events.square_refund("COMPLETED", at=30))
    assert order_row(db, "order-2001")["status"] == "partially_refunded"
    late_pending = events.square_refund("PENDING", at=25)
    assert applier.apply(late_pending).status is LedgerStatus.STALE
    applier.apply(events.square_refund("COMPLETED", refund="second", amount=1000, at=40))
    assert order_row(db, "order-2001") == {
        "status": "refunded",
        "paid_amount": 1500,
        "refunded_amount": 1500,
    }


def test_shopify_order_lifecycle(applier: Applier, db: Connection) -> None:
    applier.apply(events.shopify_order("orders/create", financial_status="pending"))
    assert order_row(db, "450789469")["status"] == "pending"
    applier.apply(events.shopify_order("orders/paid", at=10))
    assert order_row(db, "450789469") == {
        "status": "paid",
        "paid_amount": 59894,
        "refunded_amount": 0,
    }
    applier.apply(events.shopify_refund(at=20))
    applier.apply(events.shopify_refund(refund=2, amount="10.00", at=30))
    assert order_row(db, "450789469")["refunded_amount"] == 5194
    assert order_row(db, "450789469")["status"] == "partially_refunded"
    applier.apply(events.shopify_order("orders/cancelled", at=40))
    assert order_row(db, "450789469")["status"] == "canceled"


def test_shopify_refund_before_the_order_converges(applier: Applier, db: Connection) -> None:
    applier.apply(events.shopify_refund(amount="598.94", at=20))
    applier.apply(events.shopify_order("orders/paid", at=10))
    assert order_row(db, "450789469")["status"] == "refunded"


def test_mercadopago_payment_is_fetched_and_applied(
    applier: Applier, db: Connection, mercadopago_api: ProviderSandbox
) -> None:
    insert_order(db, "order-mp", 10050, "BRL")
    mercadopago_api.payments["1320470583"] = mercadopago_payment(
        "1320470583", "approved", "100.50", external_reference="order-mp"
    )
    assert applier.apply(events.mercadopago()).status is LedgerStatus.APPLIED
    assert mercadopago_api.requests == ["/v1/payments/1320470583"]
    assert payment(db, "mercadopago", "1320470583")["amount"] == 10050
    assert order_row(db, "order-mp")["status"] == "paid"


def test_mercadopago_outage_is_transient_and_applies_nothing(
    applier: Applier, db: Connection, mercadopago_api: ProviderSandbox
) -> None:
    mercadopago_api.down = True
    item = events.mercadopago()
    with pytest.raises(ProviderApiUnavailable):
        applier.apply(item)
    assert ledger(db, item)["status"] == "failed"
    assert db.execute("SELECT count(*) AS n FROM payments").fetchone() == {"n": 0}
    mercadopago_api.down = False
    mercadopago_api.payments["1320470583"] = mercadopago_payment("1320470583", "approved", "5")
    assert applier.apply(item).status is LedgerStatus.APPLIED
    assert ledger(db, item)["attempts"] == 2


def test_mercadopago_client_retries_a_blip(
    database_url: str, db: Connection, mercadopago_api: ProviderSandbox
) -> None:
    retrying = Applier(
        Database(lambda: database_url),
        MercadoPagoApi(
            lambda: MERCADOPAGO_TOKEN, mercadopago_api.mercadopago_url, retries=2, backoff_factor=0
        ),
    )
    mercadopago_api.failures = [503, 429]
    mercadopago_api.payments["1320470583"] = mercadopago_payment("1320470583", "approved", "5")
    assert retrying.apply(events.mercadopago()).status is LedgerStatus.APPLIED
    assert len(mercadopago_api.requests) == 3


def test_mercadopago_unknown_payment_and_bad_token(
    database_url: str, applier: Applier, mercadopago_api: ProviderSandbox
) -> None:
    with pytest.raises(ResourceNotFound):
        applier.apply(events.mercadopago("999"))
    wrong_token = Applier(
        Database(lambda: database_url),
        MercadoPagoApi(lambda: "TEST-wrong", mercadopago_api.mercadopago_url, retries=0),
    )
    with pytest.raises(ConfigurationError, match="401"):
        wrong_token.apply(events.mercadopago("1000"))
