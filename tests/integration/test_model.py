"""Model-based test of the apply path: whatever happens, the rows are what the events imply.

Hypothesis draws scenarios: 2-6 payments across Stripe, Square, Shopify and
Mercado Pago with realistic lifecycles (partial captures, cumulative and
multiple refunds, pending refunds, failures then success, cancellations,
voided and free Shopify orders, chargebacks, split payments, amount and
currency mismatches), orders the shop saves before, during or never, poison
events sharing a FIFO group with genuine ones, genuine events whose JSON holds
a NUL character, a team's own counting handler and an event type nobody
handles. And a schedule: every event sent in a random order (SQS then keeps
the send order within a group), duplicates under the same and under a new
deduplication id, dead letters (some already redriven MAX_REDRIVES times),
consumer invocations with random batch sizes, polling through outages, the
shop saving orders, reconciler runs, crashes at four points (in the apply
transaction, before the idempotency save, before the SQS delete, in the
reconciler between re-send and DLQ delete) and outages (PostgreSQL for the
consumer only or for everyone, DynamoDB, the Mercado Pago API).

The real consumer and reconciler Lambda handlers run it; then every
dependency comes back and the system is drained. The payments, orders and
ledger rows must equal an oracle computed from the events alone
(tests/support/model.py, `expected`): nothing parked but the poison, every
poison parked, every counted event applied once, no function error, no
reconciler run that raises, nothing left on either queue.

Cost: HOOKLINE_MODEL_EXAMPLES examples (default 25, under a minute here when
they pass). For a long local run: `HOOKLINE_MODEL_EXAMPLES=500 pytest
tests/integration/test_model.py`. The run is derandomized: the same examples
every time. A failure is shrunk (a few minutes at most; HOOKLINE_MODEL_SHRINK=0
skips it) and printed as its orders, payments, events (`e3: p1
payment_intent.succeeded received=800`) and schedule (`send e3 | invoke 4
CRASH in_transaction #1 | consumer_database DOWN | ...`), then every
disagreement with the oracle and the concrete ids.

The fixed cases below show the harness works (each crash point fires, each
outage holds events back) and name, one by one, rules the model checks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from hookline.consumer.build import consumer
from hookline.handlers import Event, HandlerContext, LedgerStatus, Outcome, registry
from hookline.local.sandbox import ProviderSandbox
from hookline.observability import logger
from hookline.reconcile.build import reconciler
from hypothesis import HealthCheck, Phase, given, settings
from moto.sqs.models import SQSBackend
from psycopg.conninfo import make_conninfo

from tests.support.model import (
    COUNTED,
    COUNTED_TABLE,
    COUNTED_TYPE,
    POISON,
    RECONCILER_CRASH,
    Case,
    DeadLetter,
    Drain,
    Harness,
    Invoke,
    Order,
    Outage,
    Payment,
    Reconcile,
    Send,
    ShopSavesOrder,
    Step,
    cases,
    ev,
    explain,
    materialize,
    run_case,
)
from tests.support.pipeline import Pipeline
from tests.support.postgres import PostgresServer
from tests.support.tcp_proxy import TcpProxy

EXAMPLES = int(os.environ.get("HOOKLINE_MODEL_EXAMPLES", "25"))
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
if os.environ.get("HOOKLINE_MODEL_SHRINK", "1") != "0":
    PHASES.append(Phase.shrink)

HandlerFunction = Callable[[HandlerContext, Event], Outcome]


@pytest.fixture
def counted_events(db: psycopg.Connection[Any]) -> Iterator[None]:
    """A team's own handler, ("stripe", "test.counted"): it counts each application."""
    db.execute(
        f"CREATE TABLE public.{COUNTED_TABLE} (event_id text PRIMARY KEY, n integer NOT NULL)"
    )

    def count_event(context: HandlerContext, event: Event) -> Outcome:
        context.connection.execute(
            f"INSERT INTO public.{COUNTED_TABLE} AS c (event_id, n) VALUES (%s, 1)"  # noqa: S608
            " ON CONFLICT (event_id) DO UPDATE SET n = c.n + 1",
            (event.envelope.event_id,),
        )
        return Outcome(LedgerStatus.APPLIED)

    registry.register("stripe", COUNTED_TYPE)(count_event)
    try:
        yield
    finally:
        registry._handlers.pop(("stripe", COUNTED_TYPE), None)


@pytest.fixture
def harness(
    pipeline: Pipeline,
    reconcile: Callable[[dict[str, Any]], dict[str, Any]],
    db: psycopg.Connection[Any],
    postgres: PostgresServer,
    database_url: str,
    mercadopago_api: ProviderSandbox,
    monkeypatch: pytest.MonkeyPatch,
    counted_events: None,
) -> Iterator[Harness]:
    proxies = [TcpProxy(postgres.address()), TcpProxy(postgres.address())]
    for proxy in proxies:
        proxy.start()
    consumer.cache_clear()
    reconciler.cache_clear()
    model = Harness(
        pipeline,
        reconcile,
        db,
        mercadopago_api,
        proxies[0],
        proxies[1],
        make_conninfo(database_url, host="127.0.0.1", port=str(proxies[0].port)),
        make_conninfo(database_url, host="127.0.0.1", port=str(proxies[1].port)),
        monkeypatch.setenv,
    )
    monkeypatch.setenv("DATABASE_URL", model.consumer_url)

    # Crash point 1: every handler (built-in and the counting one) dies after writing.
    originals: dict[tuple[str, str], HandlerFunction] = dict(registry._handlers)

    def crashing(handler: HandlerFunction) -> HandlerFunction:
        def crash_before_commit(context: HandlerContext, event: Event) -> Outcome:
            outcome = handler(context, event)
            model.faults.reached("in_transaction")
            return outcome

        return crash_before_commit

    for key, handler in originals.items():
        registry._handlers[key] = crashing(handler)

    # Crash point 2: committed, the idempotency record not yet saved.
    save_success = BasePersistenceLayer.save_success

    def crash_before_save(
        self: BasePersistenceLayer, data: dict[str, Any], result: dict[str, Any]
    ) -> None:
        model.faults.reached("before_idempotency_save")
        save_success(self, data, result)

    monkeypatch.setattr(BasePersistenceLayer, "save_success", crash_before_save)

    # Crash point 4: the reconciler dies between re-sending (or parking) a dead letter
    # and deleting it from the DLQ (moto's backend is where the delete lands).
    delete_message = SQSBackend.delete_message
    dlq_name = pipeline.stack.dlq_url.rsplit("/", 1)[-1]

    def crash_before_dlq_delete(self: SQSBackend, queue_name: str, receipt_handle: str) -> None:
        if queue_name == dlq_name:
            model.faults.reached(RECONCILER_CRASH)
        delete_message(self, queue_name, receipt_handle)

    monkeypatch.setattr(SQSBackend, "delete_message", crash_before_dlq_delete)
    try:
        yield model
    finally:
        model.faults.disarm()
        for key, handler in originals.items():
            registry._handlers[key] = handler
        for name, proxy in zip(("consumer", "reconciler"), proxies, strict=True):
            if model.proxies_up[name]:
                proxy.stop()


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hundreds of examples in one test: Powertools' log lines and metrics would all be
    kept in pytest's capture. A failing case rerun as a fixed test shows them."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    level = logger.log_level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=PHASES,
    suppress_health_check=list(HealthCheck),
)
@given(case=cases())
def test_any_lifecycles_schedule_crashes_and_outages_end_in_the_oracle_state(
    harness: Harness, quiet: None, case: Case
) -> None:
    world, problems = run_case(harness, case)
    assert not problems, explain(harness, world, problems)


# ----------------------------------------------------------------- fixed cases


def sends(count: int) -> tuple[Step, ...]:
    return tuple(Send(e) for e in range(count))


def check(harness: Harness, case: Case) -> None:
    world, problems = run_case(harness, case, captured_amount=False)
    assert not problems, explain(harness, world, problems)


def test_every_crash_point_fires_and_every_effect_stays_exactly_once(harness: Harness) -> None:
    case = Case(
        orders=(Order(2000, "USD"),),
        payments=(Payment("stripe", 2000, "usd", 0),),
        events=(
            ev(0, "payment_intent.succeeded"),
            ev(0, COUNTED_TYPE, COUNTED),
            ev(0, COUNTED_TYPE, COUNTED),
            ev(0, "charge.refunded", refunded=500),
        ),
        schedule=(
            Send(0),
            Send(1),
            Invoke(10, crash="in_transaction", after=2),  # e0 commits, e1 dies before commit
            Invoke(10, crash="before_idempotency_save"),  # e1 commits, its record INPROGRESS
            Invoke(10, crash="before_delete"),  # all done, nothing deleted
            Send(2),
            Send(3),
            DeadLetter(1),
            Reconcile(crash=True),  # e1's dead copy re-sent, never deleted from the DLQ
            Send(1, copy=1, new_id=True),
            Reconcile(),
        ),
    )
    check(harness, case)
    assert set(harness.faults.fired) == {
        "in_transaction",
        "before_idempotency_save",
        "before_delete",
        RECONCILER_CRASH,
    }


def test_each_outage_holds_events_back_and_loses_nothing(harness: Harness) -> None:
    case = Case(
        orders=(Order(2000, "USD"), Order(1000, "BRL")),
        payments=(
            Payment("stripe", 2000, "usd", 0),
            Payment("mercadopago", 1000, "BRL", 1, fetched="approved"),
        ),
        events=(ev(0, "payment_intent.succeeded"), ev(1, "payment")),
    )
    expect_applied = {
        "consumer_database": 0,
        "database": 0,
        "mercadopago": 1,  # the Stripe event does not wait for Mercado Pago
        "dynamodb": 2,  # the ledger dedups without the idempotency store
    }
    for dependency, applied in expect_applied.items():
        world = materialize(case)
        harness.reset(world)
        for step in (Outage(dependency, True), *sends(2), Invoke(10), Reconcile(), Invoke(10)):
            harness.step(world, step)
        rows = harness.db.execute(
            "SELECT count(*) AS n FROM webhook_events WHERE status = 'applied'"
        ).fetchone()
        assert rows == {"n": applied}, dependency
        harness.drain()
        problems = harness.disagreements(world, captured_amount=False)
        assert not problems, explain(harness, world, problems)


def test_an_orderly_delivery_across_providers_agrees_with_the_oracle(harness: Harness) -> None:
    case = Case(
        orders=(Order(2000, "USD"), Order(1500, "usd"), Order(1000, "BRL", saved="during")),
        payments=(
            Payment("stripe", 2000, "usd", 0),
            Payment("square", 1500, "USD", 1),
            Payment("shopify", 5000, "USD"),
            Payment("mercadopago", 1000, "BRL", 2, fetched="approved", fetched_refunded=250),
        ),
        events=(
            ev(0, "payment_intent.created"),
            ev(0, "payment_intent.succeeded"),
            ev(0, "charge.refunded", refunded=500),
            ev(1, "payment.updated", status="APPROVED"),
            ev(1, "payment.updated", status="COMPLETED"),
            ev(1, "refund.created", refund=0, status="PENDING", amount=500),
            ev(1, "refund.updated", refund=0, status="COMPLETED", amount=500),
            ev(2, "orders/create", financial="pending"),
            ev(2, "orders/paid", financial="paid"),
            ev(2, "refunds/create", refund=0, amount=1000, failed=300),
            ev(3, "payment"),
            ev(3, "payment"),
        ),
        schedule=(*sends(12), Drain(), ShopSavesOrder(2)),
    )
    check(harness, case)


def test_genuine_events_behind_a_poison_in_their_group_apply_and_only_the_poison_parks(
    harness: Harness,
) -> None:
    """Issue 10, defect 2."""
    case = Case(
        orders=(Order(2000, "USD"),),
        payments=(Payment("stripe", 2000, "usd", 0),),
        events=(
            ev(0, "payment_intent.succeeded", POISON),
            ev(0, "payment_intent.succeeded"),
            ev(0, COUNTED_TYPE, COUNTED),
        ),
        schedule=sends(3),
    )
    check(harness, case)


def test_a_consumer_only_database_outage_parks_nothing(harness: Harness) -> None:
    """Issue 10, defect 5: the reconciler reaches PostgreSQL, the consumer does not."""
    case = Case(
        orders=(Order(2000, "USD"),),
        payments=(Payment("stripe", 2000, "usd", 0),),
        events=(ev(0, "payment_intent.succeeded"),),
        schedule=(Outage("consumer_database", True), Send(0), *((Invoke(), Reconcile()) * 25)),
    )
    check(harness, case)


def test_a_partial_capture_refunded_before_its_capture_arrives_is_refunded(
    harness: Harness,
) -> None:
    """Issue 10, defect 7: authorized 1000, captured 800, refunded 800, refund first."""
    case = Case(
        orders=(Order(1000, "USD"),),
        payments=(Payment("stripe", 1000, "usd", 0),),
        events=(
            ev(0, "payment_intent.succeeded", received=800),
            ev(0, "charge.refunded", captured=800, refunded=800),
        ),
        schedule=(Send(1), Drain(), Send(0)),
    )
    check(harness, case)


def test_a_free_shopify_order_reported_paid_is_paid(harness: Harness) -> None:
    """Issue 10, defect 8."""
    case = Case(
        orders=(),
        payments=(Payment("shopify", 0, "USD"),),
        events=(ev(0, "orders/create", financial="paid"),),
        schedule=sends(1),
    )
    check(harness, case)


def test_payments_keep_the_amount_actually_captured(harness: Harness) -> None:
    """The oracle's `captured_amount` (the money an order counts) is a column of payments."""
    assert harness.captured_amount_column(), "payments.captured_amount does not exist"
    case = Case(
        orders=(Order(1000, "USD"),),
        payments=(Payment("stripe", 1000, "usd", 0),),
        events=(
            ev(0, "payment_intent.created"),
            ev(0, "payment_intent.succeeded", received=800),
        ),
        schedule=sends(2),
    )
    world, problems = run_case(harness, case, captured_amount=True)
    assert not problems, explain(harness, world, problems)


def test_a_genuine_event_holding_a_nul_character_applies(harness: Harness) -> None:
    """Issue 10, defect 4: jsonb refuses "\\u0000", the event is still genuine."""
    case = Case(
        orders=(Order(2000, "USD"),),
        payments=(Payment("stripe", 2000, "usd", 0),),
        events=(ev(0, "payment_intent.succeeded", nul=True), ev(0, COUNTED_TYPE, COUNTED)),
        schedule=sends(2),
    )
    check(harness, case)


def test_a_dead_copy_of_an_applied_event_is_never_parked(harness: Harness) -> None:
    """Issue 10, defect 10, and principle 2: past redrives are no verdict on the event."""
    case = Case(
        orders=(Order(2000, "USD"),),
        payments=(Payment("stripe", 2000, "usd", 0),),
        events=(ev(0, "payment_intent.succeeded"),),
        schedule=(Send(0), Drain(), DeadLetter(0, redrives=3), Reconcile()),
    )
    check(harness, case)


def test_an_orphan_left_by_an_outage_is_settled_once_its_order_exists(harness: Harness) -> None:
    """Found by the model. PostgreSQL restarts under warm containers: the first record of
    the next batch fails on the dead connection, the refund behind it applies first and
    waits as an orphan for the order the failed event creates, and the reconciler's first
    run after the outage fails its health check on its own dead connection. A later run
    settles the orphan."""
    case = Case(
        orders=(Order(2000, "USD"),),
        payments=(Payment("shopify", 1000, "USD"), Payment("stripe", 2000, "usd", 0)),
        events=(
            ev(0, "orders/create", financial="paid"),
            ev(0, "refunds/create", refund=0, amount=250),
            ev(0, "orders/cancelled", financial="partially_refunded"),
            ev(1, "payment_intent.succeeded"),
        ),
        schedule=(Send(3), Drain(), Reconcile(), Outage("database", True), *sends(3)),
    )
    check(harness, case)
