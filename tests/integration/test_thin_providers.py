"""eSewa, Khalti and Mollie against real PostgreSQL and a served ProviderSandbox.

Each event is built the way the receiver builds it (the provider module's
normalize), applied through the Applier with the one fetch mechanism
(ProviderApis), and everything applied comes from the sandbox's answer, shaped
as each provider documents it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from hookline.clients.provider_apis import ProviderApis
from hookline.consumer.apply import Applier
from hookline.database import Connection, Database
from hookline.envelope import Envelope
from hookline.errors import (
    ConfigurationError,
    MalformedEvent,
    ProviderApiUnavailable,
    ResourceNotFound,
)
from hookline.handlers import esewa as esewa_handlers  # noqa: F401 - registers the handlers
from hookline.handlers import khalti as khalti_handlers  # noqa: F401
from hookline.handlers import mollie as mollie_handlers  # noqa: F401
from hookline.ledger import LedgerStatus
from hookline.local.sandbox import (
    ProviderSandbox,
    esewa_status,
    khalti_lookup,
    mollie_payment,
    serve,
)
from hookline.payments import expect_payment
from hookline.providers.base import WebhookRequest
from hookline.providers.esewa import ESewa
from hookline.providers.khalti import Khalti
from hookline.providers.mollie import Mollie

from tests.support.events import T0
from tests.support.postgres import insert_order

KHALTI_KEY = "test_secret_key_khalti_fake_0001"
MOLLIE_KEY = "test_mollie_api_key_fake_00000001"
ESEWA_SECRET = "esewa-test-secret-fake"
SIGNED = "transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names"


@pytest.fixture
def database_url(emptied_database_url: str) -> str:
    """This module's tests write rows only: one database, emptied before each test."""
    return emptied_database_url


@pytest.fixture
def sandbox() -> Iterator[ProviderSandbox]:
    with serve(
        ProviderSandbox(None, khalti_secret_key=KHALTI_KEY, mollie_api_key=MOLLIE_KEY)
    ) as served:
        yield served


def apis(sandbox: ProviderSandbox, *, mollie_key: str = MOLLIE_KEY) -> ProviderApis:
    credentials = {"khalti": KHALTI_KEY, "mollie": mollie_key}
    return ProviderApis(credentials.__getitem__, sandbox.api_urls, retries=0)


@pytest.fixture
def applier(database_url: str, sandbox: ProviderSandbox) -> Iterator[Applier]:
    database = Database(lambda: database_url)
    yield Applier(database, apis(sandbox), clock=lambda: T0 + timedelta(hours=1))
    database.discard()


def received(offset: int = 0) -> datetime:
    return datetime.now(UTC) + timedelta(microseconds=offset)


def esewa_event(uuid: str = "order-np-1", total: str = "1000.0", code: str = "000AWEO") -> Envelope:
    values = {
        "transaction_code": code,
        "status": "COMPLETE",
        "total_amount": total,
        "transaction_uuid": uuid,
        "product_code": "EPAYTEST",
        "signed_field_names": SIGNED,
    }
    message = ",".join(f"{name}={values[name]}" for name in SIGNED.split(","))
    signature = base64.b64encode(
        hmac.new(ESEWA_SECRET.encode(), message.encode(), hashlib.sha256).digest()
    ).decode()
    text = (
        f'{{"transaction_code":"{code}","status":"COMPLETE","total_amount":{total},'
        f'"transaction_uuid":"{uuid}","product_code":"EPAYTEST",'
        f'"signed_field_names":"{SIGNED}","signature":"{signature}"}}'
    )
    body = ("data=" + quote(base64.b64encode(text.encode()).decode(), safe="")).encode()
    request = WebhookRequest(body=body)
    ESewa().verify(request, (ESEWA_SECRET,), now=0, tolerance=300)
    return ESewa().normalize(request, received_at=received())


def khalti_event(pidx: str = "bZQLD9wRVWo4CdESSfuSsB", offset: int = 0) -> Envelope:
    body = f"pidx={pidx}&amount=10000&total_amount=10000&status=Completed&purchase_order_id=x"
    return Khalti().normalize(WebhookRequest(body=body.encode()), received_at=received(offset))


def mollie_event(payment_id: str = "tr_WDqYK6vllg", offset: int = 0) -> Envelope:
    body = f"id={payment_id}".encode()
    return Mollie().normalize(WebhookRequest(body=body), received_at=received(offset))


def one(db: Connection, query: str, *params: object) -> dict[str, object] | None:
    return db.execute(query, params).fetchone()


def payment(db: Connection, provider: str, payment_id: str) -> dict[str, object] | None:
    return one(
        db,
        "SELECT status, amount, currency, amount_refunded, order_id FROM payments"
        " WHERE provider = %s AND provider_payment_id = %s",
        provider,
        payment_id,
    )


def order_status(db: Connection, order_id: str) -> object:
    row = one(db, "SELECT status FROM orders WHERE id = %s", order_id)
    assert row is not None
    return row["status"]


def ledger(db: Connection, item: Envelope) -> dict[str, object]:
    row = one(
        db,
        "SELECT status, attempts, failure_kind, permanent_failures, last_error"
        " FROM webhook_events WHERE provider = %s AND event_id = %s",
        item.provider,
        item.event_id,
    )
    assert row is not None
    return row


def payment_count(db: Connection) -> object:
    row = one(db, "SELECT count(*) AS n FROM payments")
    assert row is not None
    return row["n"]


# eSewa ---------------------------------------------------------------------------------


def test_esewa_complete_is_fetched_with_the_signed_values_and_pays_the_order(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    insert_order(db, "order-np-1", 100000, "NPR")
    sandbox.esewa_payments["order-np-1"] = esewa_status("order-np-1", "COMPLETE", "1000.0")
    assert applier.apply(esewa_event()).status is LedgerStatus.APPLIED
    assert sandbox.requests == [
        "/api/epay/transaction/status/"
        "?product_code=EPAYTEST&total_amount=1000.0&transaction_uuid=order-np-1"
    ]
    assert payment(db, "esewa", "order-np-1") == {
        "status": "succeeded",
        "amount": 100000,
        "currency": "NPR",
        "amount_refunded": 0,
        "order_id": "order-np-1",
    }
    assert order_status(db, "order-np-1") == "paid"


def test_esewa_replay_of_a_redirect_is_a_duplicate_without_another_call(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    insert_order(db, "order-np-1", 100000, "NPR")
    sandbox.esewa_payments["order-np-1"] = esewa_status("order-np-1", "COMPLETE", "1000.0")
    assert not applier.apply(esewa_event()).duplicate
    again = applier.apply(esewa_event())
    assert again.duplicate
    assert len(sandbox.requests) == 1


@pytest.mark.parametrize("status", ["PENDING", "AMBIGUOUS"])
def test_esewa_not_settled_yet_waits_as_transient_then_applies(
    applier: Applier, db: Connection, sandbox: ProviderSandbox, status: str
) -> None:
    insert_order(db, "order-np-1", 100000, "NPR")
    sandbox.esewa_payments["order-np-1"] = esewa_status("order-np-1", status, "1000.0")
    item = esewa_event()
    for _ in range(4):  # more than the attempts that would park an event of its own fault
        with pytest.raises(ProviderApiUnavailable, match=status):
            applier.apply(item)
    recorded = ledger(db, item)
    assert (recorded["status"], recorded["failure_kind"], recorded["permanent_failures"]) == (
        "failed",
        "transient",
        0,
    )
    assert payment_count(db) == 0
    sandbox.esewa_payments["order-np-1"] = esewa_status("order-np-1", "COMPLETE", "1000.0")
    assert applier.apply(item).status is LedgerStatus.APPLIED
    assert order_status(db, "order-np-1") == "paid"


def test_esewa_outage_is_transient_and_never_parked(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    sandbox.down = True
    item = esewa_event()
    for _ in range(4):
        with pytest.raises(ProviderApiUnavailable):
            applier.apply(item)
    assert ledger(db, item)["permanent_failures"] == 0
    assert one(db, "SELECT count(*) AS n FROM parked_events") == {"n": 0}


@pytest.mark.parametrize(
    ("status", "payment_status", "refunded", "order"),
    [
        ("FULL_REFUND", "refunded", 100000, "refunded"),
        # The status API gives no refunded amount: none is recorded, the order stays paid.
        ("PARTIAL_REFUND", "partially_refunded", 0, "paid"),
        ("CANCELED", "canceled", 0, "pending"),
    ],
)
def test_esewa_refunds_and_cancellations(
    applier: Applier,
    db: Connection,
    sandbox: ProviderSandbox,
    status: str,
    payment_status: str,
    refunded: int,
    order: str,
) -> None:
    insert_order(db, "order-np-1", 100000, "NPR")
    sandbox.esewa_payments["order-np-1"] = esewa_status("order-np-1", status, "1000.0")
    assert applier.apply(esewa_event()).status is LedgerStatus.APPLIED
    found = payment(db, "esewa", "order-np-1")
    assert found is not None
    assert (found["status"], found["amount_refunded"]) == (payment_status, refunded)
    assert order_status(db, "order-np-1") == order


def test_esewa_not_found_is_the_events_own_failure_and_parked(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    """A signed success eSewa does not know is for a human, not for silence."""
    item = esewa_event()
    for _ in range(2):
        with pytest.raises(ResourceNotFound):
            applier.apply(item)
    assert applier.apply(item).status is LedgerStatus.PARKED
    assert payment_count(db) == 0


def test_esewa_amount_mismatch_is_never_paid(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    insert_order(db, "order-np-1", 200000, "NPR")
    sandbox.esewa_payments["order-np-1"] = esewa_status("order-np-1", "COMPLETE", "1000.0")
    outcome = applier.apply(esewa_event())
    assert outcome.amount_mismatch
    assert order_status(db, "order-np-1") == "amount_mismatch"


# Khalti --------------------------------------------------------------------------------

PIDX = "bZQLD9wRVWo4CdESSfuSsB"


def test_khalti_bound_payment_is_confirmed_by_lookup_and_pays_its_order(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    insert_order(db, "order-k-1", 10000, "NPR")
    assert expect_payment(db, "khalti", PIDX, "order-k-1")
    sandbox.khalti_payments[PIDX] = khalti_lookup(PIDX, "Completed", 10000)
    assert applier.apply(khalti_event()).status is LedgerStatus.APPLIED
    assert sandbox.requests == ["/epayment/lookup/"]
    assert sandbox.bodies == [{"pidx": PIDX}]
    assert payment(db, "khalti", PIDX) == {
        "status": "succeeded",
        "amount": 10000,
        "currency": "NPR",
        "amount_refunded": 0,
        "order_id": "order-k-1",
    }
    assert order_status(db, "order-k-1") == "paid"


def test_khalti_first_binding_wins(db: Connection) -> None:
    assert expect_payment(db, "khalti", PIDX, "order-k-1")
    assert not expect_payment(db, "khalti", PIDX, "order-someone-else")
    assert payment(db, "khalti", PIDX) == {
        "status": "pending",
        "amount": 0,
        "currency": None,
        "amount_refunded": 0,
        "order_id": "order-k-1",
    }
    with pytest.raises(ValueError, match="order id"):
        expect_payment(db, "khalti", "other", "")


def test_khalti_payment_with_no_bound_order_is_parked_naming_expect_payment(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    sandbox.khalti_payments[PIDX] = khalti_lookup(PIDX, "Completed", 10000)
    item = khalti_event()
    for _ in range(2):
        with pytest.raises(MalformedEvent, match="expect_payment"):
            applier.apply(item)
    assert applier.apply(item).status is LedgerStatus.PARKED
    assert payment_count(db) == 0  # rolled back with the attempt: nothing applied unbound
    parked = one(db, "SELECT reason, last_error FROM parked_events")
    assert parked is not None
    assert "expect_payment" in str(parked["last_error"])


def test_khalti_unknown_pidx_is_ignored_and_never_parked(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    item = khalti_event("UnknownPidx000000000")
    assert applier.apply(item).status is LedgerStatus.IGNORED
    assert ledger(db, item)["status"] == "ignored"
    assert payment_count(db) == 0


def test_khalti_pending_then_a_second_forward_rechecks_and_applies(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    insert_order(db, "order-k-1", 10000, "NPR")
    expect_payment(db, "khalti", PIDX, "order-k-1")
    sandbox.khalti_payments[PIDX] = khalti_lookup(PIDX, "Pending", 10000)
    assert applier.apply(khalti_event()).status is LedgerStatus.APPLIED
    assert payment(db, "khalti", PIDX)["status"] == "processing"  # type: ignore[index]
    sandbox.khalti_payments[PIDX] = khalti_lookup(PIDX, "Completed", 10000)
    assert applier.apply(khalti_event(offset=1)).status is LedgerStatus.APPLIED
    assert order_status(db, "order-k-1") == "paid"
    assert len(sandbox.requests) == 2


@pytest.mark.parametrize(
    ("status", "payment_status", "refunded", "order"),
    [
        ("Refunded", "refunded", 10000, "refunded"),
        # The lookup says `refunded: true`, not how much: none is recorded.
        ("Partially Refunded", "partially_refunded", 0, "paid"),
        ("Initiated", "pending", 0, "pending"),
    ],
)
def test_khalti_lookup_statuses(
    applier: Applier,
    db: Connection,
    sandbox: ProviderSandbox,
    status: str,
    payment_status: str,
    refunded: int,
    order: str,
) -> None:
    insert_order(db, "order-k-1", 10000, "NPR")
    expect_payment(db, "khalti", PIDX, "order-k-1")
    sandbox.khalti_payments[PIDX] = khalti_lookup(PIDX, status, 10000)
    assert applier.apply(khalti_event()).status is LedgerStatus.APPLIED
    found = payment(db, "khalti", PIDX)
    assert found is not None
    assert (found["status"], found["amount_refunded"]) == (payment_status, refunded)
    assert order_status(db, "order-k-1") == order


@pytest.mark.parametrize("status", ["Expired", "User canceled"])
def test_khalti_expired_or_canceled_answered_400_cancels_the_payment(
    applier: Applier, db: Connection, sandbox: ProviderSandbox, status: str
) -> None:
    """Khalti answers these with HTTP 400, the status in the body (documented): the body
    is the answer, so the payment ends canceled and its order stays pending."""
    insert_order(db, "order-k-1", 10000, "NPR")
    expect_payment(db, "khalti", PIDX, "order-k-1")
    sandbox.khalti_payments[PIDX] = khalti_lookup(PIDX, status, 10000)
    assert applier.apply(khalti_event()).status is LedgerStatus.APPLIED
    assert payment(db, "khalti", PIDX)["status"] == "canceled"  # type: ignore[index]
    assert order_status(db, "order-k-1") == "pending"


def test_khalti_refusing_the_pidx_with_a_400_is_ignored_never_parked(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    """A pidx posted by anyone that Khalti refuses (a 400 with no status) confirms nothing."""
    expect_payment(db, "khalti", PIDX, "order-k-1")
    sandbox.failures = [400] * 5
    for offset in range(5):
        assert applier.apply(khalti_event(offset=offset)).status is LedgerStatus.IGNORED
    assert payment(db, "khalti", PIDX)["status"] == "pending"  # type: ignore[index]


def test_khalti_amount_mismatch_is_never_paid(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    insert_order(db, "order-k-1", 20000, "NPR")
    expect_payment(db, "khalti", PIDX, "order-k-1")
    sandbox.khalti_payments[PIDX] = khalti_lookup(PIDX, "Completed", 10000)
    assert applier.apply(khalti_event()).amount_mismatch
    assert order_status(db, "order-k-1") == "amount_mismatch"


def test_khalti_outage_and_refused_key_are_transient(
    database_url: str, applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    expect_payment(db, "khalti", PIDX, "order-k-1")
    sandbox.down = True
    item = khalti_event()
    for _ in range(4):
        with pytest.raises(ProviderApiUnavailable):
            applier.apply(item)
    assert ledger(db, item)["permanent_failures"] == 0
    sandbox.down = False
    sandbox.khalti_secret_key = "rotated-at-khalti"
    with pytest.raises(ConfigurationError, match="401"):
        applier.apply(item)
    assert ledger(db, item)["failure_kind"] == "transient"


# Mollie --------------------------------------------------------------------------------

TR = "tr_WDqYK6vllg"


def test_mollie_paid_is_fetched_and_pays_the_order_in_its_metadata(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    insert_order(db, "order-m-1", 1000, "EUR")
    sandbox.mollie_payments[TR] = mollie_payment(TR, "paid", "10.00", order_id="order-m-1")
    assert applier.apply(mollie_event()).status is LedgerStatus.APPLIED
    assert sandbox.requests == [f"/v2/payments/{TR}"]
    assert payment(db, "mollie", TR) == {
        "status": "succeeded",
        "amount": 1000,
        "currency": "EUR",
        "amount_refunded": 0,
        "order_id": "order-m-1",
    }
    assert order_status(db, "order-m-1") == "paid"


def test_mollie_every_delivery_fetches_the_current_state(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    insert_order(db, "order-m-1", 1000, "EUR")
    steps = [("open", None, "pending"), ("pending", None, "processing"), ("paid", None, "paid")]
    for offset, (status, refunded, _) in enumerate(steps):
        sandbox.mollie_payments[TR] = mollie_payment(
            TR, status, "10.00", order_id="order-m-1", refunded=refunded
        )
        assert applier.apply(mollie_event(offset=offset)).status is LedgerStatus.APPLIED
    assert order_status(db, "order-m-1") == "paid"
    for offset, (refunded, payment_status, order) in enumerate(
        [("4.00", "partially_refunded", "partially_refunded"), ("10.00", "refunded", "refunded")],
        start=10,
    ):
        sandbox.mollie_payments[TR] = mollie_payment(
            TR, "paid", "10.00", order_id="order-m-1", refunded=refunded
        )
        applier.apply(mollie_event(offset=offset))
        found = payment(db, "mollie", TR)
        assert found is not None
        assert found["status"] == payment_status
        assert order_status(db, "order-m-1") == order
    assert len(sandbox.requests) == 5


def test_mollie_a_late_open_never_undoes_paid(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    insert_order(db, "order-m-1", 1000, "EUR")
    sandbox.mollie_payments[TR] = mollie_payment(TR, "paid", "10.00", order_id="order-m-1")
    applier.apply(mollie_event())
    sandbox.mollie_payments[TR] = mollie_payment(TR, "open", "10.00", order_id="order-m-1")
    assert applier.apply(mollie_event(offset=1)).status is LedgerStatus.STALE
    assert order_status(db, "order-m-1") == "paid"


@pytest.mark.parametrize(
    ("status", "payment_status", "order"),
    [("failed", "failed", "payment_failed"), ("expired", "canceled", "pending")],
)
def test_mollie_failures_and_expiry(
    applier: Applier,
    db: Connection,
    sandbox: ProviderSandbox,
    status: str,
    payment_status: str,
    order: str,
) -> None:
    insert_order(db, "order-m-1", 1000, "EUR")
    sandbox.mollie_payments[TR] = mollie_payment(TR, status, "10.00", order_id="order-m-1")
    applier.apply(mollie_event())
    assert payment(db, "mollie", TR)["status"] == payment_status  # type: ignore[index]
    assert order_status(db, "order-m-1") == order


def test_mollie_unknown_id_is_ignored_and_never_parked(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    items = [mollie_event("tr_forged0001", offset=n) for n in range(4)]
    for item in items:
        assert applier.apply(item).status is LedgerStatus.IGNORED
    assert payment_count(db) == 0
    assert one(db, "SELECT count(*) AS n FROM parked_events") == {"n": 0}


def test_mollie_amount_or_currency_mismatch_is_never_paid(
    applier: Applier, db: Connection, sandbox: ProviderSandbox
) -> None:
    insert_order(db, "order-m-1", 1000, "EUR")
    sandbox.mollie_payments[TR] = mollie_payment(
        TR, "paid", "10.00", currency="USD", order_id="order-m-1"
    )
    assert applier.apply(mollie_event()).amount_mismatch
    assert order_status(db, "order-m-1") == "amount_mismatch"


def test_mollie_outage_is_transient_and_a_bad_key_is_configuration(
    database_url: str, db: Connection, sandbox: ProviderSandbox, applier: Applier
) -> None:
    sandbox.down = True
    item = mollie_event()
    for _ in range(4):
        with pytest.raises(ProviderApiUnavailable):
            applier.apply(item)
    assert ledger(db, item)["permanent_failures"] == 0
    sandbox.down = False
    wrong = Applier(Database(lambda: database_url), apis(sandbox, mollie_key="test_wrong"))
    with pytest.raises(ConfigurationError, match="401"):
        wrong.apply(item)
