"""Paddle and Adyen events applied to real PostgreSQL, through the Applier.

Envelopes are made the way the receiver makes them: a signed request, verified
and normalized by the provider module, so event ids, ordering keys and times are
the ones production derives (for Adyen, from signed fields only).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

# Imported for their effect: they register the handlers under test.
import hookline.handlers.adyen
import hookline.handlers.paddle
import pytest
from hookline.consumer.apply import Applier
from hookline.database import Connection, Database
from hookline.envelope import Envelope
from hookline.errors import MalformedEvent
from hookline.ledger import LedgerStatus
from hookline.local.sandbox import ProviderSandbox
from hookline.providers.adyen import Adyen
from hookline.providers.base import WebhookRequest
from hookline.providers.paddle import Paddle

from tests.conftest import MERCADOPAGO_TOKEN
from tests.support.apis import sandbox_apis
from tests.support.events import T0
from tests.support.postgres import insert_order

PADDLE_SECRET = "pdl_ntfset_integration_fake"
ADYEN_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
TXN = "txn_01hv8wptq8987qeep44cyrewp9"
PSP = "7914073381342284"
_ids = itertools.count(1)


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


def order(db: Connection, order_id: str) -> dict[str, Any]:
    return row(
        db, "SELECT status, paid_amount, refunded_amount FROM orders WHERE id = %s", order_id
    )


def ledger_status(db: Connection, item: Envelope) -> str:
    found = row(
        db,
        "SELECT status FROM webhook_events WHERE provider = %s AND event_id = %s",
        item.provider,
        item.event_id,
    )
    return str(found["status"])


# ---------------------------------------------------------------- paddle


def paddle(event_type: str, data: dict[str, Any], *, at: int = 0) -> Envelope:
    """A signed Paddle delivery, verified and normalized as the receiver does."""
    occurred = (T0 + timedelta(seconds=at)).isoformat().replace("+00:00", "Z")
    body = json.dumps(
        {
            "event_id": f"evt_integration{next(_ids):012d}",
            "event_type": event_type,
            "occurred_at": occurred,
            "notification_id": f"ntf_integration{next(_ids):012d}",
            "data": data,
        }
    ).encode()
    timestamp = int(T0.timestamp())
    digest = hmac.new(
        PADDLE_SECRET.encode(), f"{timestamp}:".encode() + body, hashlib.sha256
    ).hexdigest()
    request = WebhookRequest(body=body, headers={"paddle-signature": f"ts={timestamp};h1={digest}"})
    Paddle().verify(request, (PADDLE_SECRET,), now=timestamp, tolerance=300)
    return Paddle().normalize(request, received_at=datetime.now(UTC))


def transaction(
    event_type: str = "transaction.completed",
    *,
    total: str = "2000",
    currency: str = "USD",
    order_id: str | None = "order-paddle",
    at: int = 0,
) -> Envelope:
    return paddle(
        event_type,
        {
            "id": TXN,
            "status": "completed" if event_type == "transaction.completed" else "past_due",
            "currency_code": currency,
            "custom_data": {"order_id": order_id} if order_id else None,
            "details": {
                "totals": {
                    "subtotal": total,
                    "tax": "0",
                    "total": total,
                    "grand_total": total,
                    "currency_code": currency,
                }
            },
        },
        at=at,
    )


def adjustment(
    adjustment_id: str,
    amount: str,
    status: str = "approved",
    *,
    event_type: str = "adjustment.updated",
    action: str = "refund",
    at: int = 10,
) -> Envelope:
    return paddle(
        event_type,
        {
            "id": adjustment_id,
            "action": action,
            "transaction_id": TXN,
            "status": status,
            "currency_code": "USD",
            "totals": {"subtotal": amount, "tax": "0", "total": amount, "currency_code": "USD"},
        },
        at=at,
    )


def test_paddle_completed_transaction_pays_the_order(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-paddle", 2000)
    outcome = applier.apply(transaction())
    assert outcome.status is LedgerStatus.APPLIED
    assert payment(db, "paddle", TXN) == {
        "status": "succeeded",
        "amount": 2000,
        "currency": "USD",
        "amount_refunded": 0,
        "order_id": "order-paddle",
    }
    assert order(db, "order-paddle") == {
        "status": "paid",
        "paid_amount": 2000,
        "refunded_amount": 0,
    }


def test_paddle_grand_total_is_the_amount_charged(applier: Applier, db: Connection) -> None:
    """A credit lowers grand_total below total: what the customer paid is grand_total."""
    insert_order(db, "order-paddle", 1500)
    item = transaction()
    body = json.loads(item.body)
    body["data"]["details"]["totals"]["grand_total"] = "1500"
    applier.apply(item.model_copy(update={"body": json.dumps(body)}))
    assert order(db, "order-paddle")["status"] == "paid"


def test_paddle_a_late_payment_failure_never_undoes_a_completion(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-paddle", 2000)
    applier.apply(transaction(at=20))
    late = transaction("transaction.payment_failed", at=10)
    assert applier.apply(late).status is LedgerStatus.STALE
    assert ledger_status(db, late) == "stale"
    assert payment(db, "paddle", TXN)["status"] == "succeeded"
    assert order(db, "order-paddle")["status"] == "paid"


def test_paddle_a_failed_attempt_then_completion_is_paid(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-paddle", 2000)
    applier.apply(transaction("transaction.payment_failed", at=10))
    assert order(db, "order-paddle")["status"] == "payment_failed"
    applier.apply(transaction(at=20))
    assert order(db, "order-paddle")["status"] == "paid"


def test_paddle_partial_refunds_add_up(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-paddle", 2000)
    applier.apply(transaction())
    applier.apply(adjustment("adj_first", "500"))
    assert order(db, "order-paddle") == {
        "status": "partially_refunded",
        "paid_amount": 2000,
        "refunded_amount": 500,
    }
    applier.apply(adjustment("adj_second", "1500", at=20))
    assert order(db, "order-paddle")["status"] == "refunded"
    assert payment(db, "paddle", TXN)["amount_refunded"] == 2000


def test_paddle_only_an_approved_refund_moves_money(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-paddle", 2000)
    applier.apply(transaction())
    applier.apply(
        adjustment("adj_pending", "700", "pending_approval", event_type="adjustment.created")
    )
    applier.apply(adjustment("adj_rejected", "300", "rejected"))
    assert order(db, "order-paddle") == {
        "status": "paid",
        "paid_amount": 2000,
        "refunded_amount": 0,
    }
    # The pending one approved later counts once, however often Paddle tells it.
    applier.apply(adjustment("adj_pending", "700", at=30))
    applier.apply(adjustment("adj_pending", "700", at=40))
    assert order(db, "order-paddle")["refunded_amount"] == 700


def test_paddle_an_approval_seen_before_its_creation_stays_approved(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-paddle", 2000)
    applier.apply(transaction())
    applier.apply(adjustment("adj_1", "800", at=30))
    late = adjustment("adj_1", "800", "pending_approval", event_type="adjustment.created", at=20)
    assert applier.apply(late).status is LedgerStatus.STALE
    assert order(db, "order-paddle")["refunded_amount"] == 800


def test_paddle_a_refund_before_its_transaction_ends_right(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-paddle", 2000)
    applier.apply(adjustment("adj_early", "500", at=30))
    applier.apply(transaction(at=10))
    assert order(db, "order-paddle") == {
        "status": "partially_refunded",
        "paid_amount": 2000,
        "refunded_amount": 500,
    }


def test_paddle_other_adjustments_are_ignored(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-paddle", 2000)
    applier.apply(transaction())
    credit = adjustment("adj_credit", "2000", action="credit")
    assert applier.apply(credit).status is LedgerStatus.IGNORED
    assert order(db, "order-paddle")["status"] == "paid"


def test_paddle_a_chargeback_takes_the_money_back(applier: Applier, db: Connection) -> None:
    """Paddle records a chargeback as an approved adjustment: the customer's bank took
    the money back, so the order is not paid any more."""
    insert_order(db, "order-paddle", 2000)
    applier.apply(transaction())
    chargeback = adjustment(
        "adj_chargeback", "2000", event_type="adjustment.created", action="chargeback"
    )
    assert applier.apply(chargeback).status is LedgerStatus.APPLIED
    assert order(db, "order-paddle") == {
        "status": "refunded",
        "paid_amount": 2000,
        "refunded_amount": 2000,
    }
    # Paddle's later update of the same adjustment counts it once.
    applier.apply(adjustment("adj_chargeback", "2000", action="chargeback", at=20))
    assert payment(db, "paddle", TXN)["amount_refunded"] == 2000


def renewal(txn_id: str, origin: str, *, at: int) -> Envelope:
    """A transaction Paddle created for the subscription: it carries the checkout's
    custom_data, as Paddle copies it onto every transaction of the subscription."""
    item = transaction(at=at)
    body = json.loads(item.body)
    body["data"] |= {
        "id": txn_id,
        "origin": origin,
        "subscription_id": "sub_01hv8x29kz0t586xy6zn1a62ny",
    }
    return paddle("transaction.completed", body["data"], at=at)


@pytest.mark.parametrize(
    "origin",
    [
        "subscription_recurring",
        "subscription_charge",
        "subscription_update",
        "subscription_payment_method_change",
    ],
)
def test_paddle_a_renewal_never_counts_towards_the_checkouts_order(
    applier: Applier, db: Connection, origin: str
) -> None:
    insert_order(db, "order-paddle", 2000)
    applier.apply(transaction())
    outcome = applier.apply(renewal("txn_01hv9renewal00000000000000", origin, at=86400 * 30))
    assert outcome.status is LedgerStatus.APPLIED
    assert order(db, "order-paddle") == {
        "status": "paid",
        "paid_amount": 2000,
        "refunded_amount": 0,
    }
    # The renewal is a payment of its own, bound to no order.
    renewed = payment(db, "paddle", "txn_01hv9renewal00000000000000")
    assert (renewed["status"], renewed["order_id"]) == ("succeeded", None)


@pytest.mark.parametrize("origin", ["web", "api"])
def test_paddle_a_checkout_or_api_transaction_binds_its_order(
    applier: Applier, db: Connection, origin: str
) -> None:
    insert_order(db, "order-paddle", 2000)
    item = renewal(TXN, origin, at=0)
    assert applier.apply(item).order_status == "paid"


@pytest.mark.parametrize(("total", "currency"), [("1999", "USD"), ("2000", "EUR")])
def test_paddle_amount_or_currency_mismatch_is_never_paid(
    applier: Applier, db: Connection, total: str, currency: str
) -> None:
    insert_order(db, "order-paddle", 2000, "USD")
    outcome = applier.apply(transaction(total=total, currency=currency))
    assert outcome.amount_mismatch
    assert order(db, "order-paddle")["status"] == "amount_mismatch"


def test_paddle_a_replay_is_a_no_op(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-paddle", 2000)
    applier.apply(transaction())
    refund = adjustment("adj_once", "500")
    applier.apply(refund)
    again = applier.apply(refund)
    assert again.duplicate
    assert order(db, "order-paddle")["refunded_amount"] == 500


@pytest.mark.parametrize("total", ["-5", "20.00", "1e3", "9" * 19, 2000])
def test_paddle_an_amount_that_is_not_minor_units_is_malformed(
    applier: Applier, db: Connection, total: object
) -> None:
    item = transaction()
    body = json.loads(item.body)
    body["data"]["details"]["totals"]["grand_total"] = total
    with pytest.raises(MalformedEvent, match="grand_total"):
        applier.apply(item.model_copy(update={"body": json.dumps(body)}))


# ---------------------------------------------------------------- adyen


def adyen_item(
    event_code: str,
    *,
    psp: str = PSP,
    original: str | None = None,
    value: int = 2000,
    currency: str = "EUR",
    success: str = "true",
    reference: str = "order-adyen",
    event_date: str = "2025-10-09T10:53:20+02:00",
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "amount": {"currency": currency, "value": value},
        "eventCode": event_code,
        "eventDate": event_date,
        "merchantAccountCode": "HooklineECOM",
        "merchantReference": reference,
        "pspReference": psp,
        "success": success,
    }
    if original is not None:
        item["originalReference"] = original
    return item


def adyen(item: dict[str, Any]) -> Envelope:
    """A signed Adyen notification, verified and normalized as the receiver does."""
    fields = {**item, **item["amount"]}
    names = (
        "pspReference",
        "originalReference",
        "merchantAccountCode",
        "merchantReference",
        "value",
        "currency",
        "eventCode",
        "success",
    )
    signing = ":".join(str(fields.get(name, "")) for name in names)
    digest = hmac.new(bytes.fromhex(ADYEN_KEY), signing.encode(), hashlib.sha256).digest()
    signed = copy.deepcopy(item)
    signed["additionalData"] = {"hmacSignature": base64.b64encode(digest).decode()}
    body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": signed}]})
    request = WebhookRequest(body=body.encode())
    Adyen().verify(request, (ADYEN_KEY,), now=T0.timestamp(), tolerance=300)
    return Adyen().normalize(request, received_at=datetime.now(UTC))


def test_adyen_authorisation_pays_the_order(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    assert applier.apply(adyen(adyen_item("AUTHORISATION"))).status is LedgerStatus.APPLIED
    assert payment(db, "adyen", PSP) == {
        "status": "succeeded",
        "amount": 2000,
        "currency": "EUR",
        "amount_refunded": 0,
        "order_id": "order-adyen",
    }
    assert order(db, "order-adyen") == {"status": "paid", "paid_amount": 2000, "refunded_amount": 0}


def test_adyen_a_refused_authorisation_fails_the_payment(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION", success="false")))
    assert payment(db, "adyen", PSP)["status"] == "failed"
    assert order(db, "order-adyen")["status"] == "payment_failed"


def test_adyen_capture_before_authorisation_ends_paid(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("CAPTURE", psp="8815000000000001", original=PSP)))
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    assert payment(db, "adyen", PSP)["status"] == "succeeded"
    assert order(db, "order-adyen")["status"] == "paid"


def test_adyen_a_cancellation_never_undoes_a_success(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    cancel = adyen(adyen_item("CANCELLATION", psp="8815000000000002", original=PSP))
    assert applier.apply(cancel).status is LedgerStatus.STALE
    assert payment(db, "adyen", PSP)["status"] == "succeeded"
    assert order(db, "order-adyen")["status"] == "paid"


def test_adyen_a_cancellation_cancels_an_unpaid_payment(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("CANCELLATION", psp="8815000000000003", original=PSP)))
    assert payment(db, "adyen", PSP)["status"] == "canceled"
    assert order(db, "order-adyen")["status"] == "pending"


def test_adyen_partial_refunds_add_up(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    applier.apply(adyen(adyen_item("REFUND", psp="8815000000000011", original=PSP, value=500)))
    assert order(db, "order-adyen") == {
        "status": "partially_refunded",
        "paid_amount": 2000,
        "refunded_amount": 500,
    }
    applier.apply(adyen(adyen_item("REFUND", psp="8815000000000012", original=PSP, value=1500)))
    assert order(db, "order-adyen")["status"] == "refunded"
    assert payment(db, "adyen", PSP)["amount_refunded"] == 2000


def test_adyen_a_refund_before_the_authorisation_ends_right(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("REFUND", psp="8815000000000013", original=PSP, value=500)))
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    assert order(db, "order-adyen") == {
        "status": "partially_refunded",
        "paid_amount": 2000,
        "refunded_amount": 500,
    }


def test_adyen_a_refused_modification_changes_nothing(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    for code in ("REFUND", "CANCELLATION", "CAPTURE"):
        refused = adyen(adyen_item(code, psp="8815000000000021", original=PSP, success="false"))
        assert applier.apply(refused).status is LedgerStatus.IGNORED, code
    assert order(db, "order-adyen") == {"status": "paid", "paid_amount": 2000, "refunded_amount": 0}


def test_adyen_other_event_codes_are_ignored(applier: Applier, db: Connection) -> None:
    item = adyen(adyen_item("REPORT_AVAILABLE", psp="8815000000000031", reference=""))
    assert applier.apply(item).status is LedgerStatus.IGNORED
    assert ledger_status(db, item) == "ignored"


@pytest.mark.parametrize(("value", "currency"), [(1999, "EUR"), (2000, "USD")])
def test_adyen_amount_or_currency_mismatch_is_never_paid(
    applier: Applier, db: Connection, value: int, currency: str
) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    outcome = applier.apply(adyen(adyen_item("AUTHORISATION", value=value, currency=currency)))
    assert outcome.amount_mismatch
    assert order(db, "order-adyen")["status"] == "amount_mismatch"


def test_adyen_a_replay_with_another_event_date_is_a_no_op(
    applier: Applier, db: Connection
) -> None:
    """eventDate is unsigned: a replay that changes it is the same event, applied once."""
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    refund = adyen_item("REFUND", psp="8815000000000041", original=PSP, value=500)
    first = adyen(refund)
    replay = adyen(refund | {"eventDate": "1999-01-01T00:00:00+00:00"})
    assert replay.event_id == first.event_id
    applier.apply(first)
    assert applier.apply(replay).duplicate
    assert order(db, "order-adyen")["refunded_amount"] == 500


@pytest.fixture
def manual_capture() -> Iterator[None]:
    """A merchant account with delayed or manual capture (ADYEN_CAPTURE=manual)."""
    was = hookline.handlers.adyen.capture_mode()
    hookline.handlers.adyen.configure("manual")
    yield
    hookline.handlers.adyen.configure(was)


@pytest.mark.usefixtures("manual_capture")
def test_adyen_manual_capture_an_authorisation_is_not_money(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    assert applier.apply(adyen(adyen_item("AUTHORISATION"))).order_status == "pending"
    assert payment(db, "adyen", PSP) == {
        "status": "processing",
        "amount": 2000,
        "currency": "EUR",
        "amount_refunded": 0,
        "order_id": "order-adyen",
    }
    capture = adyen(adyen_item("CAPTURE", psp="8815000000000051", original=PSP))
    assert applier.apply(capture).order_status == "paid"
    assert payment(db, "adyen", PSP)["status"] == "succeeded"


@pytest.mark.usefixtures("manual_capture")
def test_adyen_manual_capture_authorised_then_cancelled_is_never_paid(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    applier.apply(adyen(adyen_item("CANCELLATION", psp="8815000000000052", original=PSP)))
    assert payment(db, "adyen", PSP)["status"] == "canceled"
    assert order(db, "order-adyen") == {"status": "pending", "paid_amount": 0, "refunded_amount": 0}


@pytest.mark.usefixtures("manual_capture")
def test_adyen_manual_capture_a_partial_capture_is_never_paid(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    partial = adyen(adyen_item("CAPTURE", psp="8815000000000053", original=PSP, value=1000))
    assert applier.apply(partial).amount_mismatch
    assert order(db, "order-adyen") == {
        "status": "amount_mismatch",
        "paid_amount": 1000,
        "refunded_amount": 0,
    }


@pytest.mark.usefixtures("manual_capture")
def test_adyen_manual_capture_delivered_before_its_authorisation_ends_paid(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("CAPTURE", psp="8815000000000054", original=PSP)))
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    assert payment(db, "adyen", PSP)["status"] == "succeeded"
    assert order(db, "order-adyen")["status"] == "paid"


def test_adyen_a_modifications_reference_never_binds_the_order(
    applier: Applier, db: Connection
) -> None:
    """A modification's merchantReference is the modification request's own reference:
    a refund delivered before its authorisation must not bind the payment to it."""
    insert_order(db, "order-adyen", 2000, "EUR")
    early = adyen_item("REFUND", psp="8815000000000061", original=PSP, reference="refund-9")
    assert applier.apply(adyen(early)).order_id is None
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    assert payment(db, "adyen", PSP)["order_id"] == "order-adyen"
    assert order(db, "order-adyen") == {
        "status": "refunded",
        "paid_amount": 2000,
        "refunded_amount": 2000,
    }


def test_adyen_cancel_or_refund_of_a_captured_payment_refunds_it(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    item = adyen(adyen_item("CANCEL_OR_REFUND", psp="8815000000000071", original=PSP))
    assert applier.apply(item).status is LedgerStatus.APPLIED
    assert payment(db, "adyen", PSP)["status"] == "refunded"
    assert order(db, "order-adyen") == {
        "status": "refunded",
        "paid_amount": 2000,
        "refunded_amount": 2000,
    }


@pytest.mark.usefixtures("manual_capture")
def test_adyen_manual_capture_cancel_or_refund_before_any_capture_cancels(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    applier.apply(adyen(adyen_item("CANCEL_OR_REFUND", psp="8815000000000072", original=PSP)))
    assert payment(db, "adyen", PSP)["status"] == "canceled"
    assert order(db, "order-adyen") == {"status": "pending", "paid_amount": 0, "refunded_amount": 0}


@pytest.mark.usefixtures("manual_capture")
def test_adyen_manual_capture_cancel_or_refund_delivered_before_its_capture_refunded(
    applier: Applier, db: Connection
) -> None:
    """Captured, then cancel-or-refund (a refund, then), delivered in the other order:
    a canceled authorisation is never captured, so the capture proves it refunded."""
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    applier.apply(adyen(adyen_item("CANCEL_OR_REFUND", psp="8815000000000073", original=PSP)))
    applier.apply(adyen(adyen_item("CAPTURE", psp="8815000000000074", original=PSP)))
    assert payment(db, "adyen", PSP)["status"] == "refunded"
    assert order(db, "order-adyen") == {
        "status": "refunded",
        "paid_amount": 2000,
        "refunded_amount": 2000,
    }


def test_adyen_a_chargeback_takes_the_money_back(applier: Applier, db: Connection) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    chargeback = adyen_item("CHARGEBACK", psp="8815000000000081", original=PSP, reference="")
    assert applier.apply(adyen(chargeback)).status is LedgerStatus.APPLIED
    assert order(db, "order-adyen") == {
        "status": "refunded",
        "paid_amount": 2000,
        "refunded_amount": 2000,
    }
    # A replayed notification after its ledger row expired counts once (its pspReference).
    db.execute("DELETE FROM webhook_events WHERE event_type = 'CHARGEBACK'")
    applier.apply(adyen(chargeback))
    assert payment(db, "adyen", PSP)["amount_refunded"] == 2000


# --- second review: refunds never exceed the captured money; reversals go to a human ----


@pytest.mark.usefixtures("manual_capture")
def test_adyen_cancel_or_refund_after_a_partial_capture_refunds_what_was_captured(
    applier: Applier, db: Connection
) -> None:
    """Captured 1000 of 2000, then CANCEL_OR_REFUND naming the original 2000: Adyen
    refunds the 1000 captured and releases the rest. 2000 never went back."""
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    applier.apply(adyen(adyen_item("CAPTURE", psp="8815000000000111", original=PSP, value=1000)))
    applier.apply(adyen(adyen_item("CANCEL_OR_REFUND", psp="8815000000000112", original=PSP)))
    assert payment(db, "adyen", PSP)["amount_refunded"] == 1000
    assert order(db, "order-adyen")["refunded_amount"] == 1000


@pytest.mark.usefixtures("manual_capture")
def test_adyen_cancel_or_refund_before_a_partial_capture_refunds_what_was_captured(
    applier: Applier, db: Connection
) -> None:
    """Delivered the other way round: the pending refund settles at what the capture
    proves (1000), not at the 2000 its notification named."""
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    applier.apply(adyen(adyen_item("CANCEL_OR_REFUND", psp="8815000000000122", original=PSP)))
    applier.apply(adyen(adyen_item("CAPTURE", psp="8815000000000121", original=PSP, value=1000)))
    assert order(db, "order-adyen")["refunded_amount"] == 1000


def parked_after_attempts(applier: Applier, item: Envelope) -> None:
    """Applied until the consumer parks it: its own failure, three times."""
    for _ in range(2):
        with pytest.raises(MalformedEvent):
            applier.apply(item)
    assert applier.apply(item).status is LedgerStatus.PARKED


@pytest.mark.parametrize(
    "code", ["CHARGEBACK_REVERSED", "CAPTURE_FAILED", "REFUND_FAILED", "SECOND_CHARGEBACK"]
)
def test_an_adyen_reversal_of_counted_money_is_parked_for_a_human(
    applier: Applier, db: Connection, code: str
) -> None:
    insert_order(db, "order-adyen", 2000, "EUR")
    applier.apply(adyen(adyen_item("AUTHORISATION")))
    applier.apply(adyen(adyen_item("CHARGEBACK", psp="8815000000000131", original=PSP)))
    reversal = adyen(adyen_item(code, psp="8815000000000132", original=PSP))
    parked_after_attempts(applier, reversal)
    ledger = row(
        db, "SELECT status, last_error FROM webhook_events WHERE event_id = %s", reversal.event_id
    )
    assert ledger["status"] == "parked"
    assert code in ledger["last_error"]
    assert "by hand" in ledger["last_error"]
    # Nothing was undone on a guess: the chargeback stays counted until a human acts.
    assert order(db, "order-adyen")["refunded_amount"] == 2000


def test_a_paddle_chargeback_reversal_is_parked_for_a_human(
    applier: Applier, db: Connection
) -> None:
    insert_order(db, "order-paddle", 2000)
    applier.apply(transaction())
    applier.apply(adjustment("adj_chargeback", "2000", action="chargeback"))
    parked_after_attempts(applier, adjustment("adj_reverse", "2000", action="chargeback_reverse"))
    assert order(db, "order-paddle")["status"] == "refunded"
