"""Concurrency: handlers that touch one payment or order row, forced to overlap.

Every pair of built-in handler kinds that can touch the same row (a kind with
itself included, with two different events), and orphan settling against the
consumer, run as two transactions on two connections, each in its own thread,
their interleaving forced by a third connection holding the contended rows
(tests/support/interleave.py), in both start orders. Neither may fail (a
deadlock is an error from `apply`), and the rows they leave must be the rows the
same two events leave when applied one after the other, in either order (the
rules are order-independent, docs/handlers.md).

Each run builds its scenario from a fresh token, so all cases share one
database; rows are compared with the token blanked out.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hookline.consumer.apply import Applier
from hookline.database import Connection, Database
from hookline.envelope import Envelope
from hookline.ledger import LedgerStatus
from hookline.local.sandbox import ProviderSandbox, mercadopago_payment, serve
from hookline.orphans import settle
from psycopg.rows import dict_row

from tests.conftest import MERCADOPAGO_TOKEN
from tests.support import events
from tests.support.apis import sandbox_apis
from tests.support.events import T0
from tests.support.interleave import Contender, Finish, Row, interleave
from tests.support.postgres import PostgresServer, fresh_database, insert_order

NOW = T0 + timedelta(hours=1)
ORPHAN_DEADLINE = timedelta(hours=72)
ORDER_AMOUNT = 10000  # minor units, USD; Shopify's orders total "100.00"

KINDS = (
    "stripe_intent",  # payment_intent.*
    "stripe_refund",  # charge.refunded
    "stripe_checkout",  # checkout.session.completed
    "square_payment",  # payment.*
    "square_refund",  # refund.*
    "shopify_order",  # orders/create, orders/paid
    "shopify_cancel",  # orders/cancelled
    "shopify_refund",  # refunds/create
    "mercadopago",  # payment
)


def provider_of(kind: str) -> str:
    return kind.split("_")[0]


# Held rows: the order row; for two handlers of one provider (one payment), the
# payment row as well (payment first: the holder keeps to the lock order too).
HELD_ORDER = "order"
HELD_BOTH = "payment+order"

PAIRS = [
    pytest.param(first, second, held, id=f"{first}+{second}-{held}")
    for first, second in itertools.combinations_with_replacement(KINDS, 2)
    for held in (
        (HELD_ORDER, HELD_BOTH) if provider_of(first) == provider_of(second) else (HELD_ORDER,)
    )
]
START_ORDERS = [pytest.param(False, id="A-first"), pytest.param(True, id="B-first")]
HOLDS = [pytest.param(HELD_ORDER, id=HELD_ORDER), pytest.param(HELD_BOTH, id=HELD_BOTH)]

_tokens = itertools.count(710001)


@dataclass(frozen=True)
class Ids:
    """Every id of one scenario, derived from its token (blanked when rows are compared)."""

    token: int = field(default_factory=lambda: next(_tokens))

    @property
    def order(self) -> str:
        # Numeric, so it is also a Shopify order id, which other providers then name.
        return f"{self.token}1"

    @property
    def stripe(self) -> str:
        return f"pi_{self.token}"

    @property
    def square(self) -> str:
        return f"sqpay{self.token}"

    @property
    def mercadopago(self) -> str:
        return f"{self.token}2"  # Mercado Pago payment ids are numbers

    def refund(self, number: int) -> str:
        return f"{self.token}{number + 2}"  # 3, 4: numeric for Shopify, text for Square

    def payment(self, provider: str) -> str:
        return {
            "stripe": self.stripe,
            "square": self.square,
            "shopify": self.order,  # Shopify's order is its own payment
            "mercadopago": self.mercadopago,
        }[provider]

    def blank(self, value: Any) -> Any:
        return value.replace(str(self.token), "#") if isinstance(value, str) else value


@dataclass(frozen=True)
class Step:
    """One event, and what must be true just before it applies (a provider API's answer)."""

    envelope: Envelope
    prepare: Callable[[], None] | None = None


@dataclass
class Scenario:
    ids: Ids
    shop_order: bool  # the shop creates the order (else Shopify's events do)
    setup: list[Step]
    a: Step
    b: Step
    providers: list[str]


def _edit(envelope: Envelope, change: Callable[[dict[str, Any]], None]) -> Envelope:
    body = json.loads(envelope.body)
    change(body)
    return envelope.model_copy(update={"body": json.dumps(body)})


def _unpaid(body: dict[str, Any]) -> None:
    body["data"]["object"]["payment_status"] = "unpaid"


class World:
    """The shared database, the Mercado Pago sandbox and two consumers (A, B)."""

    def __init__(
        self, url: str, db: Connection, sandbox: ProviderSandbox, lanes: tuple[Lane, Lane]
    ) -> None:
        self.url = url
        self.db = db
        self.sandbox = sandbox
        self.lanes = lanes

    # -- events -----------------------------------------------------------------

    def mercadopago(self, ids: Ids, status: str, amount: int, at: int) -> Step:
        def prepare() -> None:
            self.sandbox.payments[ids.mercadopago] = mercadopago_payment(
                ids.mercadopago,
                status,
                f"{amount / 100:.2f}",
                currency="USD",
                external_reference=ids.order,
                updated=(T0 + timedelta(seconds=at)).isoformat(),
            )

        return Step(events.mercadopago(ids.mercadopago, at=at), prepare)

    def opening(self, provider: str, ids: Ids, amount: int) -> Step:
        """The event that creates the provider's payment (pending), before the race."""
        if provider == "stripe":
            return Step(
                events.stripe(
                    "payment_intent.created", intent=ids.stripe, amount=amount, order_id=ids.order
                )
            )
        if provider == "square":
            return Step(
                events.square_payment(
                    "PENDING", payment=ids.square, amount=amount, order_id=ids.order, created=True
                )
            )
        if provider == "shopify":
            return Step(
                events.shopify_order(
                    "orders/create",
                    order=int(ids.order),
                    total="100.00",
                    financial_status="pending",
                )
            )
        return self.mercadopago(ids, "pending", amount, at=0)

    def event(self, kind: str, variant: int, ids: Ids, amount: int) -> Step:
        """Variant 1 is the kind's event in every pair; variant 2 its other event (self pairs)."""
        first = variant == 1
        if kind == "stripe_intent":
            return Step(
                events.stripe(
                    "payment_intent.succeeded" if first else "payment_intent.processing",
                    intent=ids.stripe,
                    amount=amount,
                    order_id=ids.order,
                    at=20 if first else 10,
                )
            )
        if kind == "stripe_refund":  # cumulative: a partial refund, then all of it
            return Step(
                events.stripe(
                    "charge.refunded",
                    intent=ids.stripe,
                    amount=amount,
                    order_id=ids.order,
                    refunded=amount * 3 // 10 if first else amount,
                    at=30 if first else 40,
                )
            )
        if kind == "stripe_checkout":
            session = events.stripe(
                "checkout.session.completed",
                intent=ids.stripe,
                amount=amount,
                order_id=ids.order,
                at=25 if first else 15,
            )
            return Step(session if first else _edit(session, _unpaid))
        if kind == "square_payment":
            return Step(
                events.square_payment(
                    "COMPLETED" if first else "APPROVED",
                    payment=ids.square,
                    amount=amount,
                    order_id=ids.order,
                    at=20 if first else 10,
                )
            )
        if kind == "square_refund":  # two refunds of one payment: 60 % and 40 %
            return Step(
                events.square_refund(
                    "COMPLETED",
                    refund=f"sqref{ids.refund(variant)}",
                    payment=ids.square,
                    amount=amount * (6 if first else 4) // 10,
                    at=30 if first else 40,
                )
            )
        if kind == "shopify_order":
            if first:
                return Step(
                    events.shopify_order("orders/paid", order=int(ids.order), total="100.00", at=20)
                )
            return Step(
                events.shopify_order(
                    "orders/create",
                    order=int(ids.order),
                    total="100.00",
                    financial_status="authorized",
                    at=10,
                )
            )
        if kind == "shopify_cancel":
            # "refunded" maps to succeeded, so no pair sets succeeded against
            # canceled (equal ranks: whichever came first stays, by design).
            return Step(
                events.shopify_order(
                    "orders/cancelled",
                    order=int(ids.order),
                    total="100.00",
                    financial_status="refunded" if first else "pending",
                    at=50 if first else 45,
                )
            )
        if kind == "shopify_refund":  # two refunds of one order: 60.00 and 40.00
            return Step(
                events.shopify_refund(
                    refund=int(ids.refund(variant)),
                    order=int(ids.order),
                    amount="60.00" if first else "40.00",
                    at=30 if first else 40,
                )
            )
        assert kind == "mercadopago"
        return self.mercadopago(
            ids, "approved" if first else "in_process", amount, at=20 if first else 10
        )

    def scenario(self, first: str, second: str) -> Scenario:
        ids = Ids()
        providers = sorted({provider_of(first), provider_of(second)})
        # Two providers split the order; Shopify's payment is always its order's total.
        amount = ORDER_AMOUNT // len(providers)
        return Scenario(
            ids=ids,
            shop_order="shopify" not in providers,
            # Shopify's opening event creates the order, so it goes first.
            setup=[
                self.opening(provider, ids, amount)
                for provider in sorted(providers, key=lambda name: name != "shopify")
            ],
            a=self.event(first, 1, ids, amount),
            b=self.event(second, 2 if first == second else 1, ids, amount),
            providers=providers,
        )

    # -- running ----------------------------------------------------------------

    def apply(self, step: Step, lane: int = 0) -> LedgerStatus:
        if step.prepare is not None:
            step.prepare()
        return self.lanes[lane].applier.apply(step.envelope).status

    def set_up(self, scenario: Scenario) -> None:
        if scenario.shop_order:
            insert_order(self.db, scenario.ids.order, ORDER_AMOUNT)
        for step in scenario.setup:
            assert self.apply(step) is LedgerStatus.APPLIED, step.envelope

    def held(self, scenario: Scenario, held: str) -> list[Row]:
        rows = []
        if held == HELD_BOTH:
            (provider,) = scenario.providers
            key = {"provider": provider, "provider_payment_id": scenario.ids.payment(provider)}
            rows.append(Row("payments", key))
        rows.append(Row("orders", {"id": scenario.ids.order}))
        return rows

    def contender(self, name: str, lane: int, step: Step) -> Contender:
        consumer = self.lanes[lane]
        return Contender(
            name=f"{name} {step.envelope.provider} {step.envelope.event_type}",
            backend_pid=consumer.backend_pid(),
            action=lambda: consumer.applier.apply(step.envelope),
            prepare=step.prepare,
        )

    def race(self, held: list[Row], *contenders: Contender) -> list[Finish]:
        finishes = interleave(self.url, held, contenders)
        failed = [finish.describe() for finish in finishes if finish.error is not None]
        assert not failed, f"a transaction failed when they overlapped: {failed}"
        assert finishes[0].blocked, f"{finishes[0].name} never waited for the held rows"
        for finish in finishes:
            status = getattr(finish.result, "status", None)
            assert status is not LedgerStatus.PARKED, finish.describe()
        return finishes

    def run_concurrently(self, scenario: Scenario, held: str, b_first: bool) -> Snapshot:
        self.set_up(scenario)
        steps = [("A", scenario.a), ("B", scenario.b)]
        if b_first:
            steps.reverse()
        self.race(
            self.held(scenario, held),
            *(self.contender(name, lane, step) for lane, (name, step) in enumerate(steps)),
        )
        return self.snapshot(scenario)

    def run_serially(self, scenario: Scenario, b_first: bool) -> Snapshot:
        self.set_up(scenario)
        for step in (scenario.b, scenario.a) if b_first else (scenario.a, scenario.b):
            self.apply(step)
        return self.snapshot(scenario)

    # -- comparing --------------------------------------------------------------

    def snapshot(self, scenario: Scenario, roles: dict[str, str] | None = None) -> Snapshot:
        ids = scenario.ids
        names = roles or {
            **{step.envelope.event_id: f"setup {n}" for n, step in enumerate(scenario.setup)},
            scenario.a.envelope.event_id: "A",
            scenario.b.envelope.event_id: "B",
        }
        payment_ids = [ids.payment(provider) for provider in scenario.providers]
        event_ids = list(names)
        return Snapshot(
            orders=self._rows(ids, "SELECT * FROM orders WHERE id = %s", ids.order),
            payments=self._rows(
                ids,
                "SELECT * FROM payments WHERE order_id = %s OR provider_payment_id = ANY(%s)",
                ids.order,
                payment_ids,
            ),
            refunds=self._rows(
                ids, "SELECT * FROM refunds WHERE provider_payment_id = ANY(%s)", payment_ids
            ),
            ledger=self._rows(
                ids,
                "SELECT event_id, provider, event_type, object_id, occurred_at, status,"
                " attempts, last_error, order_id FROM webhook_events WHERE event_id = ANY(%s)",
                event_ids,
                names=names,
            ),
            parked=self._rows(
                ids,
                "SELECT event_id, reason FROM parked_events WHERE event_id = ANY(%s)",
                event_ids,
                names=names,
            ),
        )

    def _rows(
        self, ids: Ids, query: str, *params: object, names: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        rows = []
        for found in self.db.execute(query, params).fetchall():
            row = {
                column: ids.blank(value)
                for column, value in found.items()
                if column not in BOOKKEEPING
            }
            if names is not None:
                row["event_id"] = names[found["event_id"]]
            rows.append(row)
        return sorted(rows, key=repr)


# When a row was written, not what it says.
BOOKKEEPING = frozenset({"created_at", "updated_at", "processed_at", "received_at", "parked_at"})


@dataclass(frozen=True)
class Snapshot:
    orders: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    parked: list[dict[str, Any]]

    @property
    def domain(self) -> dict[str, list[dict[str, Any]]]:
        """What the events did to the shop's money: independent of their order."""
        return {"orders": self.orders, "payments": self.payments, "refunds": self.refunds}


@dataclass
class Lane:
    """One consumer: its own Applier, Database and connection."""

    database: Database
    applier: Applier

    def backend_pid(self) -> int:
        return self.database.connection().info.backend_pid


def make_lane(url: str, sandbox: ProviderSandbox, name: str) -> Lane:
    database = Database(lambda: url, application_name=f"hookline-test-{name}")
    fetcher = sandbox_apis(sandbox.mercadopago_url, MERCADOPAGO_TOKEN, retries=0)
    return Lane(database, Applier(database, fetcher, clock=lambda: NOW))


@pytest.fixture(scope="module")
def world(postgres: PostgresServer, schema_template: str) -> Iterator[World]:
    with (
        fresh_database(postgres, schema_template) as url,
        serve(ProviderSandbox(mercadopago_token=MERCADOPAGO_TOKEN)) as sandbox,
        psycopg.connect(url, autocommit=True, row_factory=dict_row) as db,
    ):
        lanes = (make_lane(url, sandbox, "a"), make_lane(url, sandbox, "b"))
        try:
            yield World(url, db, sandbox, lanes)
        finally:
            for lane in lanes:
                lane.database.discard()


def _order(world: World, order_id: str) -> dict[str, Any]:
    found = world.db.execute(
        "SELECT status, paid_amount, refunded_amount FROM orders WHERE id = %s", (order_id,)
    ).fetchone()
    assert found is not None
    return dict(found)


def _payment(world: World, provider: str, payment_id: str) -> dict[str, Any]:
    found = world.db.execute(
        "SELECT status, amount_refunded FROM payments"
        " WHERE provider = %s AND provider_payment_id = %s",
        (provider, payment_id),
    ).fetchone()
    assert found is not None
    return dict(found)


@pytest.mark.parametrize(("first", "second", "held"), PAIRS)
def test_two_handlers_overlapping_on_one_row_keep_both_effects(
    world: World, first: str, second: str, held: str
) -> None:
    serial = world.run_serially(world.scenario(first, second), b_first=False)
    serial_reversed = world.run_serially(world.scenario(first, second), b_first=True)
    assert serial.domain == serial_reversed.domain, "the rules depend on arrival order"
    assert serial.parked == serial_reversed.parked == []

    for b_first in (False, True):
        overlapped = world.run_concurrently(world.scenario(first, second), held, b_first)
        assert overlapped.domain == serial.domain, f"B first: {b_first}"
        # Stale or applied depends on which event got the row first, as it does
        # serially. Two transactions waiting for one row may get it in either
        # order once the holder lets go, so either serial order is right.
        assert overlapped.ledger in (serial.ledger, serial_reversed.ledger), f"B first: {b_first}"
        assert overlapped.parked == []


# -- Defect 1 of issue 10, by name ---------------------------------------------


def _refund_race(world: World, ids: Ids, held: str, a: Step, b: Step, b_first: bool) -> None:
    scenario = Scenario(ids, shop_order=False, setup=[], a=a, b=b, providers=[a.envelope.provider])
    steps = [("A", a), ("B", b)]
    if b_first:
        steps.reverse()
    world.race(
        world.held(scenario, held),
        *(world.contender(name, lane, step) for lane, (name, step) in enumerate(steps)),
    )


@pytest.mark.parametrize("b_first", START_ORDERS)
@pytest.mark.parametrize("held", HOLDS)
def test_defect_1a_two_shopify_refunds_applied_concurrently_both_count(
    world: World, held: str, b_first: bool
) -> None:
    ids = Ids()
    order = int(ids.order)
    paid = events.shopify_order("orders/paid", order=order, total="100.00", at=10)
    assert world.apply(Step(paid)) is LedgerStatus.APPLIED
    _refund_race(
        world,
        ids,
        held,
        Step(events.shopify_refund(refund=int(ids.refund(1)), order=order, amount="60.00", at=20)),
        Step(events.shopify_refund(refund=int(ids.refund(2)), order=order, amount="40.00", at=30)),
        b_first,
    )
    assert _payment(world, "shopify", ids.order) == {"status": "refunded", "amount_refunded": 10000}
    assert _order(world, ids.order) == {
        "status": "refunded",
        "paid_amount": 10000,
        "refunded_amount": 10000,
    }


@pytest.mark.parametrize("b_first", START_ORDERS)
@pytest.mark.parametrize("held", HOLDS)
def test_defect_1a_two_square_refunds_of_one_payment_applied_concurrently_both_count(
    world: World, held: str, b_first: bool
) -> None:
    ids = Ids()
    insert_order(world.db, ids.order, 10000)
    completed = events.square_payment(
        "COMPLETED", payment=ids.square, amount=10000, order_id=ids.order, at=10
    )
    assert world.apply(Step(completed)) is LedgerStatus.APPLIED
    _refund_race(
        world,
        ids,
        held,
        Step(
            events.square_refund(
                "COMPLETED", refund=f"sqref{ids.refund(1)}", payment=ids.square, amount=6000, at=20
            )
        ),
        Step(
            events.square_refund(
                "COMPLETED", refund=f"sqref{ids.refund(2)}", payment=ids.square, amount=4000, at=30
            )
        ),
        b_first,
    )
    assert _payment(world, "square", ids.square) == {"status": "refunded", "amount_refunded": 10000}
    assert _order(world, ids.order) == {
        "status": "refunded",
        "paid_amount": 10000,
        "refunded_amount": 10000,
    }


@pytest.mark.parametrize("b_first", START_ORDERS)
@pytest.mark.parametrize("held", HOLDS)
def test_defect_1b_shopify_cancel_and_refund_of_one_order_do_not_deadlock(
    world: World, held: str, b_first: bool
) -> None:
    ids = Ids()
    order = int(ids.order)
    paid = events.shopify_order("orders/paid", order=order, total="100.00", at=10)
    assert world.apply(Step(paid)) is LedgerStatus.APPLIED
    cancelled = events.shopify_order(
        "orders/cancelled", order=order, total="100.00", financial_status="refunded", at=30
    )
    refund = events.shopify_refund(refund=int(ids.refund(1)), order=order, amount="100.00", at=20)
    _refund_race(world, ids, held, Step(cancelled), Step(refund), b_first)
    assert _order(world, ids.order) == {
        "status": "canceled",
        "paid_amount": 10000,
        "refunded_amount": 10000,
    }
    assert _payment(world, "shopify", ids.order) == {"status": "refunded", "amount_refunded": 10000}
    # Both took effect (the order is canceled, the refund counted). The cancel
    # may be recorded `stale` when the refund came first: its payment part then
    # teaches nothing new, as it does serially in that order.
    for item in (cancelled, refund):
        found = world.db.execute(
            "SELECT status FROM webhook_events WHERE event_id = %s", (item.event_id,)
        ).fetchone()
        assert found is not None
        assert found["status"] in ("applied", "stale"), item.event_type
    found = world.db.execute(
        "SELECT status FROM webhook_events WHERE event_id = %s", (refund.event_id,)
    ).fetchone()
    assert found is not None
    assert found["status"] == "applied"


# -- Orphan settling against the consumer ----------------------------------------

ORPHAN_CASES = [
    # The consumer refunds the orphan's own payment (same payment row).
    pytest.param("same_payment", HELD_ORDER, id="same-payment-order"),
    pytest.param("same_payment", HELD_BOTH, id="same-payment-payment+order"),
    # The consumer applies another provider's payment of the orphan's order.
    pytest.param("other_payment", HELD_ORDER, id="other-payment-order"),
]


def _orphan_scenario(world: World, case: str) -> tuple[Scenario, Step]:
    """The orphan (applied before its order existed, as `orphaned`), then the order."""
    ids = Ids()
    if case == "same_payment":
        orphan = events.stripe(
            "payment_intent.succeeded", intent=ids.stripe, amount=10000, order_id=ids.order, at=10
        )
        other = events.stripe(
            "charge.refunded",
            intent=ids.stripe,
            amount=10000,
            order_id=ids.order,
            refunded=10000,
            at=20,
        )
        providers = ["stripe"]
    else:
        orphan = events.stripe(
            "payment_intent.succeeded", intent=ids.stripe, amount=6000, order_id=ids.order, at=10
        )
        other = events.square_payment(
            "COMPLETED", payment=ids.square, amount=4000, order_id=ids.order, at=20
        )
        providers = ["stripe", "square"]
    assert world.apply(Step(orphan)) is LedgerStatus.ORPHANED
    insert_order(world.db, ids.order, 10000)
    scenario = Scenario(
        ids, shop_order=False, setup=[], a=Step(orphan), b=Step(other), providers=providers
    )
    return scenario, Step(other)


def _settle(connection: Connection) -> object:
    return settle(connection, now=NOW, deadline=ORPHAN_DEADLINE)


def _orphan_snapshot(world: World, scenario: Scenario) -> Snapshot:
    return world.snapshot(
        scenario,
        roles={scenario.a.envelope.event_id: "orphan", scenario.b.envelope.event_id: "consumer"},
    )


@pytest.mark.parametrize(
    "settle_first",
    [pytest.param(True, id="settle-first"), pytest.param(False, id="consumer-first")],
)
@pytest.mark.parametrize(("case", "held"), ORPHAN_CASES)
def test_orphan_settling_overlapping_the_consumer_keeps_both_effects(
    world: World, case: str, held: str, settle_first: bool
) -> None:
    serial = []
    for settle_before in (True, False):
        scenario, other = _orphan_scenario(world, case)
        if settle_before:
            _settle(world.db)
        assert world.apply(other) is LedgerStatus.APPLIED
        if not settle_before:
            _settle(world.db)
        serial.append(_orphan_snapshot(world, scenario))
    assert serial[0] == serial[1]

    scenario, other = _orphan_scenario(world, case)
    with psycopg.connect(world.url, autocommit=True, row_factory=dict_row) as settling:
        contenders = [
            Contender("settle", settling.info.backend_pid, lambda: _settle(settling)),
            world.contender("consumer", 1, other),
        ]
        if not settle_first:
            contenders.reverse()
        world.race(world.held(scenario, held), *contenders)
    overlapped = _orphan_snapshot(world, scenario)
    assert overlapped == serial[0]
    assert [(row["event_id"], row["status"]) for row in overlapped.ledger] == [
        ("consumer", "applied"),
        ("orphan", "applied"),
    ]
    order = overlapped.orders[0]
    if case == "same_payment":
        assert (order["status"], order["paid_amount"], order["refunded_amount"]) == (
            "refunded",
            10000,
            10000,
        )
    else:
        assert (order["status"], order["paid_amount"], order["refunded_amount"]) == (
            "paid",
            10000,
            0,
        )
