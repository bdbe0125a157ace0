"""The shop learns its orders' outcomes: callbacks inside the apply transaction, NOTIFY after it.

Real PostgreSQL, through the Applier (the consumer's apply path) and the
reconciler's orphan settling: the two paths that change orders.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hookline.clients.mercadopago import MercadoPagoApi
from hookline.consumer.apply import Applier
from hookline.database import Connection, Database
from hookline.envelope import Envelope
from hookline.errors import CallbackFailed
from hookline.handlers import Handler, HandlerRegistry, OrderChanged, OrderStatus, registry
from hookline.local.sandbox import ProviderSandbox
from hookline.orphans import settle
from hookline.outbox import MAX_NOTIFY_BYTES, channel
from psycopg.rows import dict_row

from tests.conftest import MERCADOPAGO_TOKEN
from tests.support import events
from tests.support.events import T0
from tests.support.postgres import insert_order

Calls = list[tuple[str, OrderChanged]]


class CallbackRegistry(HandlerRegistry):
    """The built-in handlers, with this test's own order callbacks."""

    def get(self, provider: str, event_type: str) -> Handler | None:
        return registry.get(provider, event_type)


@pytest.fixture
def callbacks() -> CallbackRegistry:
    return CallbackRegistry()


@pytest.fixture
def applier(
    database_url: str, mercadopago_api: ProviderSandbox, callbacks: CallbackRegistry
) -> Iterator[Applier]:
    database = Database(lambda: database_url)
    yield Applier(
        database,
        MercadoPagoApi(lambda: MERCADOPAGO_TOKEN, mercadopago_api.mercadopago_url, retries=0),
        registry=callbacks,
        clock=lambda: T0 + timedelta(hours=1),
    )
    database.discard()


@pytest.fixture
def orders_channel(db: Connection) -> str:
    schema = db.execute("SELECT current_schema() AS schema").fetchone()
    assert schema is not None
    return channel(schema["schema"])


@pytest.fixture
def listener(database_url: str, orders_channel: str) -> Iterator[psycopg.Connection[Any]]:
    """A separate connection LISTENing on the orders channel, as a shop's listener does."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f'LISTEN "{orders_channel}"')
        yield connection


def heard(listener: psycopg.Connection[Any], db: Connection, orders_channel: str) -> list[str]:
    """Every payload delivered so far, in commit order: read up to a sentinel sent now."""
    db.execute("SELECT pg_notify(%s, 'sentinel')", (orders_channel,))
    payloads: list[str] = []
    for notification in listener.notifies(timeout=30):
        if notification.payload == "sentinel":
            return payloads
        payloads.append(notification.payload)
    raise AssertionError(f"the sentinel never came; heard {payloads}")


def order_status(db: Connection, order_id: str) -> str:
    row = db.execute("SELECT status FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert row is not None
    return str(row["status"])


def ledger(db: Connection, item: Envelope) -> dict[str, Any]:
    row = db.execute(
        "SELECT status, permanent_failures, failure_kind FROM webhook_events"
        " WHERE provider = %s AND event_id = %s",
        (item.provider, item.event_id),
    ).fetchone()
    assert row is not None
    return row


def test_a_callback_gets_the_order_before_and_after_and_the_event_after_the_row_is_written(
    applier: Applier, db: Connection, callbacks: CallbackRegistry
) -> None:
    insert_order(db, "order-1001", 2000, "usd")
    seen: list[tuple[OrderChanged, str]] = []

    @callbacks.on_order_change
    def record(connection: Connection, change: OrderChanged) -> None:
        # Inside the transaction: the order row already says what `after` says.
        seen.append((change, order_status(connection, change.order_id)))

    succeeded = events.stripe("payment_intent.succeeded", order_id="order-1001")
    applier.apply(succeeded)
    [(change, status_inside)] = seen
    assert status_inside == "paid"
    assert change.order_id == "order-1001"
    assert (change.previous_status, change.status) == (OrderStatus.PENDING, OrderStatus.PAID)
    assert (change.before.paid_amount, change.after.paid_amount) == (0, 2000)
    assert change.after.amount == 2000
    assert change.after.currency == "usd"
    assert (change.cause.provider, change.cause.event_id, change.cause.event_type) == (
        "stripe",
        succeeded.event_id,
        "payment_intent.succeeded",
    )


def test_callbacks_run_in_registration_order_only_when_an_order_changes(
    applier: Applier, db: Connection, callbacks: CallbackRegistry
) -> None:
    insert_order(db, "order-1001", 2000)
    calls: Calls = []
    callbacks.on_order_change(lambda _, change: calls.append(("first", change)))
    callbacks.on_order_change(lambda _, change: calls.append(("second", change)))

    # Pending stays pending: the order was recomputed but did not change.
    applier.apply(events.stripe("payment_intent.created", at=0))
    assert calls == []
    succeeded = events.stripe("payment_intent.succeeded", at=10)
    applier.apply(succeeded)
    assert [name for name, _ in calls] == ["first", "second"]
    # A redelivery, and a late event recorded stale, change nothing: no call.
    applier.apply(succeeded)
    applier.apply(events.stripe("payment_intent.processing", at=5))
    assert [name for name, _ in calls] == ["first", "second"]
    # A refund changes the order again.
    applier.apply(events.stripe("charge.refunded", refunded=500, at=20))
    assert [(name, c.status) for name, c in calls[2:]] == [
        ("first", OrderStatus.PARTIALLY_REFUNDED),
        ("second", OrderStatus.PARTIALLY_REFUNDED),
    ]


def test_a_cancellation_reaches_the_callback(
    applier: Applier, callbacks: CallbackRegistry, db: Connection
) -> None:
    calls: Calls = []
    callbacks.on_order_change(lambda _, change: calls.append(("cb", change)))
    applier.apply(events.shopify_order("orders/create", financial_status="pending"))
    assert calls == []  # created pending by hookline itself: no transition yet
    applier.apply(events.shopify_order("orders/cancelled", financial_status="voided", at=10))
    [(_, change)] = calls
    assert (change.previous_status, change.status) == (OrderStatus.PENDING, OrderStatus.CANCELED)
    assert order_status(db, change.order_id) == "canceled"


def test_a_raising_callback_rolls_the_event_back_and_it_applies_once_the_callback_works(
    applier: Applier,
    db: Connection,
    callbacks: CallbackRegistry,
    output: pytest.CaptureFixture[str],
) -> None:
    insert_order(db, "order-1001", 2000)
    db.execute("CREATE TABLE public.shop_paid (order_id text PRIMARY KEY)")
    broken = True

    @callbacks.on_order_change
    def mark_paid(connection: Connection, change: OrderChanged) -> None:
        connection.execute("INSERT INTO public.shop_paid VALUES (%s)", (change.order_id,))
        if broken:
            raise RuntimeError("the shop's bug")

    succeeded = events.stripe("payment_intent.succeeded")
    output.readouterr()
    # More attempts than the event's own-failure budget (3): never parked for it.
    for _ in range(5):
        with pytest.raises(CallbackFailed, match="mark_paid failed: RuntimeError: the shop's bug"):
            applier.apply(succeeded)
    assert ledger(db, succeeded) == {
        "status": "failed",
        "permanent_failures": 0,
        "failure_kind": "transient",
    }
    # Nothing of the event stayed: not the payment, the order, nor the callback's row.
    assert db.execute("SELECT count(*) AS n FROM payments").fetchone() == {"n": 0}
    assert order_status(db, "order-1001") == "pending"
    assert db.execute("SELECT count(*) AS n FROM public.shop_paid").fetchone() == {"n": 0}
    logged = [
        line
        for line in map(json.loads, filter(None, output.readouterr().out.splitlines()))
        if line.get("message", "").startswith("order callback failed")
    ]
    assert len(logged) == 5
    assert {k: logged[0][k] for k in ("callback", "order_id", "event_id", "error")} == {
        "callback": f"{__name__}.{mark_paid.__qualname__}",
        "order_id": "order-1001",
        "event_id": succeeded.event_id,
        "error": "RuntimeError: the shop's bug",
    }
    assert succeeded.body not in json.dumps(logged)

    broken = False
    assert applier.apply(succeeded).status.value == "applied"
    assert order_status(db, "order-1001") == "paid"
    assert db.execute("SELECT order_id FROM public.shop_paid").fetchall() == [
        {"order_id": "order-1001"}
    ]


def test_a_callback_that_swallows_a_database_error_fails_as_the_callback_not_the_database(
    applier: Applier, db: Connection, callbacks: CallbackRegistry
) -> None:
    insert_order(db, "order-1001", 2000)

    @callbacks.on_order_change
    def careless(connection: Connection, change: OrderChanged) -> None:
        # It goes on after the error, in an aborted transaction.
        with contextlib.suppress(psycopg.Error):
            connection.execute("UPDATE public.no_such_table SET paid = true")

    with pytest.raises(CallbackFailed, match="careless failed: it swallowed a database error"):
        applier.apply(events.stripe("payment_intent.succeeded"))
    assert order_status(db, "order-1001") == "pending"


def test_the_notification_is_delivered_after_commit_with_the_change(
    applier: Applier,
    db: Connection,
    callbacks: CallbackRegistry,
    listener: psycopg.Connection[Any],
    orders_channel: str,
) -> None:
    insert_order(db, "order-1001", 2000)

    @callbacks.on_order_change
    def meanwhile(connection: Connection, change: OrderChanged) -> None:
        # Committed by another session while the event's transaction is still open.
        db.execute("SELECT pg_notify(%s, 'during')", (orders_channel,))

    succeeded = events.stripe("payment_intent.succeeded")
    applier.apply(succeeded)
    during, payload = heard(listener, db, orders_channel)
    # Delivery follows commit order: the order's notification came after 'during'.
    assert during == "during"
    assert json.loads(payload) == {
        "order_id": "order-1001",
        "status": "paid",
        "previous_status": "pending",
        "amount": 2000,
        "paid_amount": 2000,
        "refunded_amount": 0,
        "currency": "USD",
        "provider": "stripe",
        "event_id": succeeded.event_id,
        "event_type": "payment_intent.succeeded",
    }
    # Compact: no spaces a listener pays for in the 8000-byte budget.
    assert ", " not in payload
    assert ": " not in payload


def test_a_rolled_back_attempt_notifies_nothing(
    applier: Applier,
    db: Connection,
    callbacks: CallbackRegistry,
    listener: psycopg.Connection[Any],
    orders_channel: str,
) -> None:
    insert_order(db, "order-1001", 2000)
    attempts: list[str] = []

    @callbacks.on_order_change
    def fails_once(connection: Connection, change: OrderChanged) -> None:
        attempts.append(change.order_id)
        if len(attempts) == 1:
            raise RuntimeError("not yet")

    succeeded = events.stripe("payment_intent.succeeded")
    with pytest.raises(CallbackFailed):
        applier.apply(succeeded)
    applier.apply(succeeded)
    applier.apply(succeeded)  # a duplicate: no change, no notification
    [payload] = heard(listener, db, orders_channel)
    assert json.loads(payload)["status"] == "paid"
    assert attempts == ["order-1001", "order-1001"]


@pytest.mark.parametrize(("length", "keeps_order_id"), [(7900, True), (9000, False)])
def test_a_huge_order_id_never_fails_the_event(
    applier: Applier,
    db: Connection,
    listener: psycopg.Connection[Any],
    orders_channel: str,
    length: int,
    keeps_order_id: bool,
) -> None:
    order_id = "o" * length  # compressible, so PostgreSQL's index takes it
    insert_order(db, order_id, 2000)
    outcome = applier.apply(events.stripe("payment_intent.succeeded", order_id=order_id))
    assert outcome.status.value == "applied"
    assert order_status(db, order_id) == "paid"
    [payload] = heard(listener, db, orders_channel)
    assert len(payload.encode()) <= MAX_NOTIFY_BYTES
    expected: dict[str, Any] = {"truncated": True, "status": "paid", "previous_status": "pending"}
    if keeps_order_id:
        expected["order_id"] = order_id
    assert json.loads(payload) == expected


def test_settling_an_orphan_runs_the_callbacks_and_notifies_naming_the_orphan(
    applier: Applier,
    db: Connection,
    callbacks: CallbackRegistry,
    listener: psycopg.Connection[Any],
    orders_channel: str,
) -> None:
    calls: Calls = []
    broken = True

    @callbacks.on_order_change
    def record(connection: Connection, change: OrderChanged) -> None:
        if broken:
            raise RuntimeError("the shop's bug")
        calls.append(("cb", change))

    early = events.stripe("payment_intent.processing", order_id="order-late", at=0)
    succeeded = events.stripe("payment_intent.succeeded", order_id="order-late", at=10)
    applier.apply(early)
    applier.apply(succeeded)
    assert ledger(db, succeeded)["status"] == "orphaned"
    insert_order(db, "order-late", 2000)
    now = T0 + timedelta(hours=1)

    # A failing callback leaves the orphans waiting for the next run, unparked.
    result = settle(db, now=now, deadline=timedelta(hours=72), registry=callbacks)
    assert (result.settled, result.parked, result.waiting) == (0, 0, 1)
    assert ledger(db, succeeded)["status"] == "orphaned"
    assert order_status(db, "order-late") == "pending"

    broken = False
    result = settle(db, now=now, deadline=timedelta(hours=72), registry=callbacks)
    assert (result.settled, result.waiting) == (2, 0)
    [(_, change)] = calls
    assert (change.previous_status, change.status) == (OrderStatus.PENDING, OrderStatus.PAID)
    # The latest of the events that waited is named as the cause.
    assert change.cause.event_id == succeeded.event_id
    [payload] = heard(listener, db, orders_channel)
    assert json.loads(payload)["event_id"] == succeeded.event_id


def test_the_channel_is_the_schema_s_own(db: Connection, orders_channel: str) -> None:
    row = db.execute("SELECT current_schema() AS schema").fetchone()
    assert row is not None
    assert orders_channel == f"{row['schema']}_orders"


def test_callbacks_registered_on_the_default_registry_are_the_consumer_s(
    database_url: str, mercadopago_api: ProviderSandbox, db: Connection
) -> None:
    insert_order(db, "order-1001", 2000)
    calls: Calls = []

    def record(connection: Connection, change: OrderChanged) -> None:
        calls.append(("default", change))

    saved = registry.order_callbacks
    registry.on_order_change(record)
    database = Database(lambda: database_url)
    try:
        Applier(
            database,
            MercadoPagoApi(lambda: MERCADOPAGO_TOKEN, mercadopago_api.mercadopago_url),
        ).apply(events.stripe("payment_intent.succeeded"))
    finally:
        registry._order_callbacks[:] = saved
        database.discard()
    assert [c.status for _, c in calls] == [OrderStatus.PAID]


def test_the_listener_reads_a_committed_row_when_notified(
    applier: Applier,
    db: Connection,
    listener: psycopg.Connection[Any],
    orders_channel: str,
    database_url: str,
) -> None:
    insert_order(db, "order-1001", 2000)
    applier.apply(events.stripe("payment_intent.succeeded"))
    [payload] = heard(listener, db, orders_channel)
    with psycopg.connect(database_url, row_factory=dict_row) as reader:
        row = reader.execute(
            "SELECT status, paid_amount FROM orders WHERE id = %s",
            (json.loads(payload)["order_id"],),
        ).fetchone()
    assert row == {"status": "paid", "paid_amount": 2000}
