"""The shop learns its orders' outcomes: callbacks inside the apply transaction, NOTIFY after it.

Real PostgreSQL, through the Applier (the consumer's apply path) and the
reconciler's orphan settling: the two paths that change orders.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hookline.consumer.apply import Applier
from hookline.database import Connection, Database, connect
from hookline.deadline import Deadline
from hookline.envelope import Envelope
from hookline.errors import CallbackFailed, DatabaseUnavailable, OutOfTime, SessionChanged
from hookline.handlers import (
    Event,
    Handler,
    HandlerContext,
    HandlerRegistry,
    OrderChanged,
    OrderStatus,
    Outcome,
    registry,
)
from hookline.local.sandbox import ProviderSandbox
from hookline.local.services import embedded_postgres
from hookline.migrate import migrate
from hookline.observability import metrics
from hookline.orphans import settle
from hookline.outbox import MAX_NOTIFY_BYTES, channel
from psycopg.rows import dict_row

from tests.conftest import MERCADOPAGO_TOKEN
from tests.support import events
from tests.support.apis import sandbox_apis
from tests.support.events import T0
from tests.support.postgres import insert_order
from tests.support.shop import create_shop_schema

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
        sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN, retries=0),
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
        # Only hookline's own channel, whatever else the listener listens to.
        assert notification.channel == orders_channel, notification
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
            sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN),
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


def logged(output: pytest.CaptureFixture[str], prefix: str) -> list[dict[str, Any]]:
    """The log lines printed so far whose message starts with `prefix`."""
    return [
        line
        for line in map(json.loads, filter(None, output.readouterr().out.splitlines()))
        if line.get("message", "").startswith(prefix)
    ]


def metric_totals(output: pytest.CaptureFixture[str]) -> dict[str, float]:
    """Each service-level metric counted since the last call (flushed now, as a handler does)."""
    metrics.flush_metrics()
    totals: dict[str, float] = {}
    for line in output.readouterr().out.splitlines():
        if line.startswith('{"_aws"'):
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                if directive["Dimensions"] == [["service"]]:
                    for metric in directive["Metrics"]:
                        values = document[metric["Name"]]
                        values = values if isinstance(values, list) else [values]
                        totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals


def count_rows(db: Connection, table: str) -> int:
    row = db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()  # noqa: S608 - tests' names
    assert row is not None
    return int(row["n"])


@pytest.mark.parametrize("statement", ["ROLLBACK", "ABORT"])
def test_a_callback_that_rolls_back_hookline_s_transaction_fails_and_the_event_applies_once_fixed(
    applier: Applier,
    db: Connection,
    callbacks: CallbackRegistry,
    listener: psycopg.Connection[Any],
    orders_channel: str,
    statement: str,
) -> None:
    """psycopg refuses connection.rollback() in hookline's transaction, not the SQL.

    Before, the event's writes vanished and apply() still said `applied`: SQS
    would have deleted the message and the payment was lost.
    """
    insert_order(db, "order-1001", 2000)
    db.execute("CREATE TABLE public.shop_paid (order_id text PRIMARY KEY)")
    broken = True

    @callbacks.on_order_change
    def own_transaction(connection: Connection, change: OrderChanged) -> None:
        if broken:
            connection.execute(statement)  # an ORM helper "cleaning up"

    @callbacks.on_order_change
    def mark_paid(connection: Connection, change: OrderChanged) -> None:
        connection.execute("INSERT INTO public.shop_paid VALUES (%s)", (change.order_id,))

    succeeded = events.stripe("payment_intent.succeeded")
    with pytest.raises(
        CallbackFailed,
        match="own_transaction failed: it ended hookline's transaction with ROLLBACK",
    ):
        applier.apply(succeeded)
    # A transient failure on record; nothing written, not even in autocommit after it.
    assert ledger(db, succeeded) == {
        "status": "failed",
        "permanent_failures": 0,
        "failure_kind": "transient",
    }
    assert count_rows(db, "payments") == 0
    assert order_status(db, "order-1001") == "pending"
    assert count_rows(db, "public.shop_paid") == 0
    assert heard(listener, db, orders_channel) == []

    broken = False
    assert applier.apply(succeeded).status.value == "applied"
    assert order_status(db, "order-1001") == "paid"
    assert count_rows(db, "payments") == 1
    assert count_rows(db, "public.shop_paid") == 1
    [payload] = heard(listener, db, orders_channel)
    assert json.loads(payload)["event_id"] == succeeded.event_id


@pytest.mark.parametrize("statement", ["COMMIT", "END"])
def test_a_callback_that_commits_hookline_s_transaction_is_reported_and_the_retry_is_a_duplicate(
    applier: Applier,
    db: Connection,
    callbacks: CallbackRegistry,
    listener: psycopg.Connection[Any],
    orders_channel: str,
    output: pytest.CaptureFixture[str],
    statement: str,
) -> None:
    """What a COMMIT did cannot be taken back: hookline says so, loudly, and goes on."""
    insert_order(db, "order-1001", 2000)
    db.execute("CREATE TABLE public.shop_paid (order_id text PRIMARY KEY)")
    later: Calls = []
    broken = True

    @callbacks.on_order_change
    def commits(connection: Connection, change: OrderChanged) -> None:
        connection.execute(
            "INSERT INTO public.shop_paid VALUES (%s) ON CONFLICT DO NOTHING", (change.order_id,)
        )
        if broken:
            connection.execute(statement)

    callbacks.on_order_change(lambda _, change: later.append(("later", change)))

    succeeded = events.stripe("payment_intent.succeeded", at=10)
    metric_totals(output)  # what earlier tests counted
    with pytest.raises(
        CallbackFailed, match="commits failed: it ended hookline's transaction with COMMIT"
    ):
        applier.apply(succeeded)
    [line] = logged(output, "order callback failed")
    assert line["level"] == "ERROR"
    assert line["message"].startswith("order callback failed after committing the event")
    assert line["callback"] == f"{__name__}.{commits.__qualname__}"
    assert "the callbacks after it and the NOTIFY never ran" in line["error"]
    assert metric_totals(output)["OrderCallbackFailed"] == 1
    # What the shop sees: everything up to the COMMIT stayed, the rest never happened.
    assert order_status(db, "order-1001") == "paid"
    assert count_rows(db, "payments") == 1
    assert count_rows(db, "public.shop_paid") == 1
    assert later == []
    assert heard(listener, db, orders_channel) == []
    # SQS delivers it again: the ledger says applied, so it is deleted, and nothing reruns.
    retried = applier.apply(succeeded)
    assert (retried.status.value, retried.duplicate) == ("applied", True)
    assert later == []

    # The next change goes through a fresh session, whole.
    broken = False
    applier.apply(events.stripe("charge.refunded", refunded=500, at=20))
    assert [c.status for _, c in later] == [OrderStatus.PARTIALLY_REFUNDED]
    [payload] = heard(listener, db, orders_channel)
    assert json.loads(payload)["status"] == "partially_refunded"


@pytest.mark.parametrize(
    "statement",
    ["SET search_path TO public, hookline", "SET LOCAL search_path TO public, hookline"],
)
def test_a_callback_that_moves_the_search_path_fails_and_later_events_are_untouched(
    applier: Applier,
    db: Connection,
    callbacks: CallbackRegistry,
    database_url: str,
    listener: psycopg.Connection[Any],
    orders_channel: str,
    statement: str,
) -> None:
    """Before, the NOTIFY went to `public_orders`, and with a plain SET the pooled
    session resolved `orders` in the shop's schema for every later event."""
    create_shop_schema(database_url)  # the shop has a `public.orders` of its own
    listener.execute('LISTEN "public_orders"')  # heard() fails on anything heard there
    insert_order(db, "order-1", 2000)
    insert_order(db, "order-2", 2000)
    moving = True

    @callbacks.on_order_change
    def unqualified(connection: Connection, change: OrderChanged) -> None:
        if moving:
            connection.execute(statement)  # a team that prefers unqualified names
            connection.execute("SELECT count(*) FROM orders")  # the shop's

    first = events.stripe("payment_intent.succeeded", intent="pi_1", order_id="order-1")
    with pytest.raises(
        CallbackFailed, match="unqualified failed: it changed the search_path to 'public, hookline'"
    ):
        applier.apply(first)
    assert order_status(db, "order-1") == "pending"
    assert ledger(db, first)["failure_kind"] == "transient"

    moving = False
    second = events.stripe("payment_intent.succeeded", intent="pi_2", order_id="order-2")
    assert applier.apply(second).status.value == "applied"
    assert applier.apply(first).status.value == "applied"
    assert (order_status(db, "order-1"), order_status(db, "order-2")) == ("paid", "paid")
    assert [json.loads(p)["order_id"] for p in heard(listener, db, orders_channel)] == [
        "order-2",
        "order-1",
    ]


class SessionMovingRegistry(HandlerRegistry):
    """The built-in handlers, each followed by `statement` while it is set: a team's
    handler doing what it must not."""

    statement: str | None = None

    def get(self, provider: str, event_type: str) -> Handler | None:
        handler = registry.get(provider, event_type)
        if handler is None:
            return None
        built_in = handler

        def moving(context: HandlerContext, event: Event) -> Outcome:
            outcome = built_in(context, event)
            if self.statement is not None:
                context.connection.execute(self.statement)
            return outcome

        return moving


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("SET search_path TO public, hookline", "it changed the search_path"),
        ("SET LOCAL search_path TO public", "it changed the search_path"),
        ("COMMIT", "it ended hookline's transaction with COMMIT"),
        # A new transaction behind it: the same connection state, another transaction.
        ("COMMIT; BEGIN", "it ended hookline's transaction with COMMIT"),
        ("ROLLBACK", "it ended hookline's transaction with ROLLBACK"),
    ],
)
def test_a_handler_that_changes_the_session_fails_as_the_event_s_own_failure(
    database_url: str,
    mercadopago_api: ProviderSandbox,
    db: Connection,
    listener: psycopg.Connection[Any],
    orders_channel: str,
    statement: str,
    error: str,
) -> None:
    """Handlers run in the same transaction, before the callbacks: caught there,
    before a NOTIFY goes to the wrong channel or the session is pooled as it is."""
    create_shop_schema(database_url)
    listener.execute('LISTEN "public_orders"')
    insert_order(db, "order-1", 2000)
    handlers = SessionMovingRegistry()
    handlers.statement = statement
    database = Database(lambda: database_url)
    applier = Applier(
        database,
        sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN, retries=0),
        registry=handlers,
    )
    try:
        succeeded = events.stripe("payment_intent.succeeded", order_id="order-1")
        with pytest.raises(
            SessionChanged, match=f"a handler broke hookline's transaction: {error}"
        ):
            applier.apply(succeeded)
        committed = statement.startswith("COMMIT")
        # One of the event's own failures; what a COMMIT committed stays (its claim, the
        # payment), anything else rolled back.
        assert ledger(db, succeeded) == {
            "status": "received" if committed else "failed",
            "permanent_failures": 1,
            "failure_kind": "permanent",
        }
        assert order_status(db, "order-1") == ("paid" if committed else "pending")
        handlers.statement = None
        applier.apply(succeeded)
        assert order_status(db, "order-1") == "paid"
        # A COMMIT's change was committed before hookline could tell anyone: the retry
        # finds the order as it leaves it, so no callback and no NOTIFY, ever.
        assert len(heard(listener, db, orders_channel)) == int(not committed)
        session = database.connection().execute("SHOW search_path").fetchone()
        assert session == {"search_path": "hookline"}
    finally:
        database.discard()


def test_a_callback_held_past_the_statement_timeout_fails_as_the_callback(
    database_url: str,
    mercadopago_api: ProviderSandbox,
    db: Connection,
    callbacks: CallbackRegistry,
    output: pytest.CaptureFixture[str],
) -> None:
    """Before, a lock wait in the shop's code surfaced as `DatabaseUnavailable`:
    no OrderCallbackFailed, no log naming the callback."""
    insert_order(db, "order-1001", 2000)
    db.execute("CREATE TABLE public.shop_busy (id int)")

    @callbacks.on_order_change
    def waits(connection: Connection, change: OrderChanged) -> None:
        connection.execute("LOCK TABLE public.shop_busy")

    database = Database(lambda: database_url, statement_timeout_ms=200)
    applier = Applier(
        database,
        sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN, retries=0),
        registry=callbacks,
    )
    succeeded = events.stripe("payment_intent.succeeded")
    metric_totals(output)
    try:
        with db.transaction():
            db.execute("LOCK TABLE public.shop_busy")  # held by the shop's other work
            with pytest.raises(CallbackFailed, match="waits failed: QueryCanceled"):
                applier.apply(succeeded)
    finally:
        database.discard()
    [line] = logged(output, "order callback failed")
    assert line["callback"] == f"{__name__}.{waits.__qualname__}"
    assert metric_totals(output)["OrderCallbackFailed"] == 1
    assert ledger(db, succeeded)["failure_kind"] == "transient"


def test_a_callback_still_waiting_at_the_invocation_s_deadline_hands_the_event_back(
    applier: Applier, db: Connection, callbacks: CallbackRegistry
) -> None:
    insert_order(db, "order-1001", 2000)
    db.execute("CREATE TABLE public.shop_busy (id int)")

    @callbacks.on_order_change
    def waits(connection: Connection, change: OrderChanged) -> None:
        connection.execute("LOCK TABLE public.shop_busy")

    deadline = Deadline.after(0.5)
    with db.transaction():
        db.execute("LOCK TABLE public.shop_busy")
        with applier.cancelled_at(deadline), pytest.raises(OutOfTime):
            applier.apply(events.stripe("payment_intent.succeeded"), deadline)
    assert count_rows(db, "webhook_events") == 0  # handed back untouched
    assert order_status(db, "order-1001") == "pending"


@pytest.fixture
def small_notify_queue(tmp_path: Path) -> Iterator[str]:
    """A PostgreSQL 17+ server (the embedded one) whose NOTIFY queue is the smallest
    allowed (64 pages, 512 kB), migrated: a stuck listener fills it in a moment."""
    with embedded_postgres(tmp_path) as url, psycopg.connect(url, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET max_notify_queue_pages = 64")
    with embedded_postgres(tmp_path) as url:
        with connect(url) as connection:
            migrate(connection)
        yield url


FILLER = "x" * 7000


def fill(connection: psycopg.Connection[Any], orders_channel: str) -> int:
    """Notify until PostgreSQL refuses (the queue is full); how many it took."""
    sent = 0
    with contextlib.suppress(psycopg.errors.ProgramLimitExceeded):
        while True:
            connection.execute("SELECT pg_notify(%s, %s)", (orders_channel, FILLER))
            sent += 1
    return sent


def test_a_full_notify_queue_never_stops_payments(
    small_notify_queue: str,
    mercadopago_api: ProviderSandbox,
    output: pytest.CaptureFixture[str],
) -> None:
    """Before, every order-changing commit failed with SQLSTATE 54000, counted as
    the event's own failure: every payment event was parked while a listener sat
    in a transaction."""
    started = time.monotonic()
    url = small_notify_queue
    orders_channel = channel("hookline")
    with (
        connect(url) as db,
        psycopg.connect(url, autocommit=True) as listener,
        psycopg.connect(url, autocommit=True) as filler,
    ):
        insert_order(db, "order-1001", 2000)
        listener.execute(f'LISTEN "{orders_channel}"')
        with listener.transaction():
            listener.execute("SELECT 1")  # stuck: PostgreSQL keeps every notification for it
            sent = fill(filler, orders_channel)
            usage = db.execute("SELECT pg_notification_queue_usage() AS usage").fetchone()
            assert usage == {"usage": 1.0}
            with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="NOTIFY queue"):
                db.execute("SELECT pg_notify(%s, 'one more')", (orders_channel,))
            database = Database(lambda: url)
            applier = Applier(
                database,
                sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN),
            )
            metric_totals(output)
            try:
                succeeded = events.stripe("payment_intent.succeeded", at=10)
                assert applier.apply(succeeded).status.value == "applied"
                [line] = logged(output, "NOTIFY skipped")
                assert metric_totals(output)["OrderNotifySkipped"] == 1
            finally:
                database.discard()
        assert (line["level"], line["event_id"], line["orders"]) == (
            "WARNING",
            succeeded.event_id,
            1,
        )
        assert order_status(db, "order-1001") == "paid"
        # The listener is free again: it reads what filled the queue (nothing of the
        # skipped change's), the queue drains, and the next change notifies.
        assert {n.payload for n in listener.notifies(stop_after=sent, timeout=30)} == {FILLER}
        database = Database(lambda: url)
        try:
            Applier(
                database,
                sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN),
            ).apply(events.stripe("charge.refunded", refunded=500, at=20))
        finally:
            database.discard()
        [payload] = heard(listener, db, orders_channel)
        assert json.loads(payload)["status"] == "partially_refunded"
    # A real overflow, on a real server, in a few seconds.
    assert time.monotonic() - started < 30


def test_a_callback_that_rolls_back_while_settling_orphans_leaves_them_waiting(
    applier: Applier,
    db: Connection,
    database_url: str,
    callbacks: CallbackRegistry,
    listener: psycopg.Connection[Any],
    orders_channel: str,
) -> None:
    """Before, settling reported the orphans settled while nothing was, and notified."""
    succeeded = events.stripe("payment_intent.succeeded", order_id="order-late")
    applier.apply(succeeded)
    insert_order(db, "order-late", 2000)
    broken = True

    @callbacks.on_order_change
    def own_transaction(connection: Connection, change: OrderChanged) -> None:
        if broken:
            connection.execute("ROLLBACK")

    now = T0 + timedelta(hours=1)
    with connect(database_url) as reconciler:
        # The run's session is closed: the reconciler's step fails, and the next opens another.
        with pytest.raises(DatabaseUnavailable, match="ended hookline's transaction"):
            settle(reconciler, now=now, deadline=timedelta(hours=72), registry=callbacks)
        assert reconciler.closed
    assert ledger(db, succeeded)["status"] == "orphaned"
    assert order_status(db, "order-late") == "pending"
    assert heard(listener, db, orders_channel) == []

    broken = False
    with connect(database_url) as reconciler:
        result = settle(reconciler, now=now, deadline=timedelta(hours=72), registry=callbacks)
    assert (result.settled, result.waiting) == (1, 0)
    assert order_status(db, "order-late") == "paid"
    [payload] = heard(listener, db, orders_channel)
    assert json.loads(payload)["event_id"] == succeeded.event_id


@pytest.mark.parametrize(
    ("statement", "setting", "left"),
    [
        ("SET statement_timeout = 0", "statement_timeout", "0"),
        ("SET default_transaction_read_only = on", "default_transaction_read_only", "on"),
        ("SET lock_timeout = '1ms'", "lock_timeout", "1ms"),
    ],
)
def test_a_setting_a_callback_leaves_behind_never_reaches_the_next_event(
    database_url: str,
    mercadopago_api: ProviderSandbox,
    db: Connection,
    callbacks: CallbackRegistry,
    statement: str,
    setting: str,
    left: str,
) -> None:
    """A plain SET outlives the transaction that committed it: with a team's modules
    loaded (verify_sessions), the connection it poisoned is dropped, not reused."""
    insert_order(db, "order-1", 2000)
    insert_order(db, "order-2", 2000)
    database = Database(lambda: database_url, verify_sessions=True)
    applier = Applier(
        database,
        sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN, retries=0),
        registry=callbacks,
    )
    leaving = True

    @callbacks.on_order_change
    def sets(connection: Connection, change: OrderChanged) -> None:
        if leaving:
            connection.execute(statement)

    try:
        poisoned = database.connection().info.backend_pid
        first = events.stripe("payment_intent.succeeded", intent="pi_1", order_id="order-1")
        assert applier.apply(first).status.value == "applied"
        leaving = False
        fresh = database.connection()
        assert fresh.info.backend_pid != poisoned
        now = fresh.execute(f"SELECT current_setting('{setting}') AS value").fetchone()
        assert now is not None
        assert now["value"] != left
        second = events.stripe("payment_intent.succeeded", intent="pi_2", order_id="order-2")
        assert applier.apply(second).status.value == "applied"
        assert (order_status(db, "order-1"), order_status(db, "order-2")) == ("paid", "paid")
    finally:
        database.discard()


def test_without_a_team_s_modules_the_session_is_not_checked_again(
    applier: Applier, db: Connection
) -> None:
    """hookline's own code sets nothing: no extra query per event when no team code runs."""
    insert_order(db, "order-1", 2000)
    connection = applier._database.connection()
    pid = connection.info.backend_pid
    applier.apply(events.stripe("payment_intent.succeeded", order_id="order-1"))
    assert applier._database.connection().info.backend_pid == pid


def test_a_callback_whose_library_wraps_the_deadline_s_cancel_hands_the_event_back(
    applier: Applier, db: Connection, callbacks: CallbackRegistry
) -> None:
    """SQLAlchemy and the like wrap psycopg's QueryCanceled in their own exception: past
    the deadline it is still the invocation's time, not the callback's failure."""
    insert_order(db, "order-1001", 2000)
    now = [0.0]

    @callbacks.on_order_change
    def wrapped(connection: Connection, change: OrderChanged) -> None:
        now[0] = 11.0  # the deadline passes while it runs
        raise RuntimeError("(psycopg.errors.QueryCanceled) canceling statement")

    with pytest.raises(OutOfTime):
        applier.apply(events.stripe("payment_intent.succeeded"), Deadline(10.0, lambda: now[0]))
    assert count_rows(db, "webhook_events") == 0  # handed back untouched
    assert order_status(db, "order-1001") == "pending"
