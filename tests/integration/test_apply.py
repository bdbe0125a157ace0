"""Applying events to real PostgreSQL: the domain rules, through the Applier."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
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
from tests.support.apis import sandbox_apis
from tests.support.events import T0
from tests.support.postgres import insert_order


@pytest.fixture
def database_url(emptied_database_url: str) -> str:
    """This module's tests write rows only: one database, emptied before each test."""
    return emptied_database_url


@pytest.fixture
def applier(database_url: str, mercadopago_api: ProviderSandbox) -> Iterator[Applier]:
    database = Database(lambda: database_url)
    yield Applier(
        database,
        sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN, retries=0),
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
        sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN),
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
        sandbox_apis(
            mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN, retries=2, backoff_factor=0
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
        sandbox_apis(mercadopago_api.mercadopago_url, "TEST-wrong", retries=0),
    )
    with pytest.raises(ConfigurationError, match="401"):
        wrong_token.apply(events.mercadopago("1000"))


def stripe_partial_capture(event_type: str, at: int) -> Envelope:
    """A payment intent authorized for 1000, captured 800, then refunded in full."""
    if event_type == "charge.refunded":
        obj: dict[str, object] = {
            "id": "ch_partial",
            "object": "charge",
            "payment_intent": "pi_partial",
            "amount": 1000,
            "amount_captured": 800,
            "amount_refunded": 800,
            "currency": "usd",
            "metadata": {"order_id": "order-partial"},
        }
    else:
        succeeded = event_type == "payment_intent.succeeded"
        obj = {
            "id": "pi_partial",
            "object": "payment_intent",
            "amount": 1000,
            "amount_received": 800 if succeeded else 0,
            "currency": "usd",
            "metadata": {"order_id": "order-partial"},
        }
    event_id = f"evt_partial_{at}"
    body = {"id": event_id, "type": event_type, "data": {"object": obj}}
    return events.envelope("stripe", event_type, str(obj["id"]), body, event_id=event_id, at=at)


@pytest.mark.parametrize(
    "arrival", list(itertools.permutations(range(3))), ids=lambda p: "-".join(map(str, p))
)
def test_partial_capture_then_full_refund_is_refunded_in_every_arrival_order(
    applier: Applier, db: Connection, arrival: tuple[int, ...]
) -> None:
    """Issue 10, defect 7: the money a payment counts is what was captured."""
    insert_order(db, "order-partial", 800)
    lifecycle = [
        stripe_partial_capture("payment_intent.created", at=0),
        stripe_partial_capture("payment_intent.succeeded", at=10),
        stripe_partial_capture("charge.refunded", at=20),
    ]
    for index in arrival:
        applier.apply(lifecycle[index])
    assert row(
        db,
        "SELECT status, amount, captured_amount, amount_refunded FROM payments"
        " WHERE provider_payment_id = 'pi_partial'",
    ) == {"status": "refunded", "amount": 1000, "captured_amount": 800, "amount_refunded": 800}
    assert order_row(db, "order-partial") == {
        "status": "refunded",
        "paid_amount": 800,
        "refunded_amount": 800,
    }


def test_a_free_shopify_order_reported_paid_is_paid(applier: Applier, db: Connection) -> None:
    """Issue 10, defect 8: total 0.00, financial_status paid."""
    outcome = applier.apply(events.shopify_order("orders/paid", order=777, total="0.00"))
    assert (outcome.status, outcome.order_status) == (LedgerStatus.APPLIED, "paid")
    assert order_row(db, "777") == {"status": "paid", "paid_amount": 0, "refunded_amount": 0}


def test_a_hostile_but_valid_json_payload_is_stored_and_applied(
    applier: Applier, db: Connection
) -> None:
    """Issue 10, defect 4: jsonb refuses \\u0000 (and 1e400 is no number it can hold)."""
    insert_order(db, "order-1001", 2000)
    item = events.stripe("payment_intent.succeeded")
    body = item.body.replace(
        '"metadata": {',
        '"description": "gift\\u0000wrap", "\\u0000key": 1e400, "nested": '
        + "[" * 500
        + "]" * 500
        + ', "metadata": {',
    )
    hostile = item.model_copy(update={"body": body})
    assert "\\u0000" in hostile.body
    assert applier.apply(hostile).status is LedgerStatus.APPLIED
    assert order_row(db, "order-1001")["status"] == "paid"
    stored = row(
        db,
        "SELECT payload #>> '{data,object,description}' AS description,"
        " payload #>> '{data,object,\ufffdkey}' AS number, raw_body"
        " FROM webhook_events WHERE event_id = %s",
        hostile.event_id,
    )
    # jsonb holds a readable copy; the exact body is kept for replays.
    assert stored == {"description": "gift\ufffdwrap", "number": "inf", "raw_body": hostile.body}


def test_an_ordinary_payload_keeps_no_raw_copy(applier: Applier, db: Connection) -> None:
    item = events.stripe("payment_intent.succeeded", order_id=None)
    applier.apply(item)
    assert ledger_raw_body(db, item) is None


def ledger_raw_body(db: Connection, item: Envelope) -> object:
    return row(db, "SELECT raw_body FROM webhook_events WHERE event_id = %s", item.event_id)[
        "raw_body"
    ]


def test_a_payload_that_is_not_json_is_recorded_and_parked_after_its_own_failures(
    applier: Applier, db: Connection
) -> None:
    item = events.stripe("payment_intent.succeeded").model_copy(update={"body": "{not json"})
    for _ in range(2):
        with pytest.raises(MalformedEvent):
            applier.apply(item)
    assert applier.apply(item).status is LedgerStatus.PARKED
    parked = row(db, "SELECT reason, payload, raw_body, event_type FROM parked_events")
    assert parked == {
        "reason": "permanent_failure",
        "payload": {},
        "raw_body": "{not json",
        "event_type": "payment_intent.succeeded",
    }


def test_a_lone_surrogate_in_a_payload_is_stored_and_applied(
    applier: Applier, db: Connection
) -> None:
    """Valid JSON, refused by jsonb ("Unicode low surrogate must follow a high surrogate")."""
    insert_order(db, "order-1001", 2000)
    item = events.stripe("payment_intent.succeeded")
    body = item.body.replace('"metadata": {', '"description": "caf\\ud800", "metadata": {')
    hostile = item.model_copy(update={"body": body})
    assert applier.apply(hostile).status is LedgerStatus.APPLIED
    stored = row(
        db,
        "SELECT payload #>> '{data,object,description}' AS description, raw_body"
        " FROM webhook_events WHERE event_id = %s",
        hostile.event_id,
    )
    assert stored == {"description": "caf\ufffd", "raw_body": hostile.body}
    assert order_row(db, "order-1001")["status"] == "paid"


def test_an_id_too_large_for_its_index_is_the_events_own_failure_and_parked(
    applier: Applier, db: Connection
) -> None:
    """PostgreSQL's "index row size exceeds maximum" is about the data, not an outage:
    it fails the same way every time, so it counts and parks, and never waits forever."""
    item = events.stripe("charge.refunded", intent="pi_long", refunded=100)
    # The charge's own id (its group key) is short; the payment intent it names is not.
    incompressible = "".join(hashlib.sha512(bytes([n])).hexdigest() for n in range(40))
    item = item.model_copy(update={"body": item.body.replace("pi_long", "pi_" + incompressible)})
    for _ in range(2):
        with pytest.raises(psycopg.errors.ProgramLimitExceeded):
            applier.apply(item)
    assert applier.apply(item).status is LedgerStatus.PARKED
    parked = row(db, "SELECT reason, last_error FROM parked_events")
    assert parked["reason"] == "permanent_failure"
    assert "ProgramLimitExceeded" in str(parked["last_error"])


@pytest.mark.parametrize("status", [408, 409, 425])
def test_a_provider_answer_that_says_try_later_is_transient(
    database_url: str, db: Connection, mercadopago_api: ProviderSandbox, status: int
) -> None:
    no_retries = Applier(
        Database(lambda: database_url),
        sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN, retries=0),
    )
    mercadopago_api.failures = [status]
    item = events.mercadopago()
    with pytest.raises(ProviderApiUnavailable, match=str(status)):
        no_retries.apply(item)
    recorded = row(
        db,
        "SELECT failure_kind, permanent_failures FROM webhook_events WHERE event_id = %s",
        item.event_id,
    )
    assert recorded == {"failure_kind": "transient", "permanent_failures": 0}


def test_a_free_stripe_checkout_makes_its_order_paid(applier: Applier, db: Connection) -> None:
    """Issue 10, defect 8, for Stripe: a 0.00 Checkout session has no payment intent."""
    insert_order(db, "order-free", 0)
    body = {
        "id": "evt_free",
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": "cs_test_free",
                "object": "checkout.session",
                "payment_intent": None,
                "payment_status": "no_payment_required",
                "amount_total": 0,
                "currency": "usd",
                "client_reference_id": "order-free",
                "metadata": {},
            }
        },
    }
    item = events.envelope(
        "stripe", "checkout.session.completed", "cs_test_free", body, event_id="evt_free"
    )
    assert applier.apply(item).status is LedgerStatus.APPLIED
    assert order_row(db, "order-free") == {"status": "paid", "paid_amount": 0, "refunded_amount": 0}
