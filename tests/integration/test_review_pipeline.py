"""The pipelined apply path under attack: concurrent copies, lost connections,
statements failing mid-pipeline, a team's handler among batched statements, and
the payment lock's effect on a shop's triggers.

Overlaps are forced with row locks held by another connection and observed in
pg_stat_activity (tests/support/interleave.py); nothing waits on a clock.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hookline.consumer.apply import Applier
from hookline.database import Connection, Database
from hookline.envelope import Envelope
from hookline.errors import DatabaseUnavailable, MalformedEvent, SessionChanged
from hookline.handlers import Event, Handler, HandlerContext, HandlerRegistry, Outcome, registry
from hookline.ledger import FailureKind, LedgerStatus, claim, record_failure
from hookline.local.sandbox import ProviderSandbox
from hookline.payloads import parse, store
from psycopg.pq import PipelineStatus, TransactionStatus
from psycopg.rows import dict_row

from tests.conftest import MERCADOPAGO_TOKEN
from tests.support import events
from tests.support.apis import sandbox_apis
from tests.support.events import T0
from tests.support.interleave import Contender, Row, interleave
from tests.support.postgres import insert_order

WAIT_SECONDS = 15.0
POLL_SECONDS = 0.002


@dataclass
class Consumer:
    """One consumer container: its own Database (one connection) and Applier."""

    database: Database
    applier: Applier

    @property
    def pid(self) -> int:
        return self.database.connection().info.backend_pid

    def ready(self) -> None:
        """The connection is as an event must find it: idle, out of pipeline mode."""
        connection = self.database.connection()
        assert connection.info.transaction_status is TransactionStatus.IDLE
        assert connection.pgconn.pipeline_status == PipelineStatus.OFF


@pytest.fixture
def consumers(
    database_url: str, mercadopago_api: ProviderSandbox
) -> Iterator[Callable[..., Consumer]]:
    made: list[Database] = []

    def make(handlers: HandlerRegistry | None = None, **settings: Any) -> Consumer:
        database = Database(lambda: database_url, **settings)
        made.append(database)
        applier = Applier(
            database,
            sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN, retries=0),
            registry=handlers if handlers is not None else registry,
            clock=lambda: T0 + timedelta(hours=1),
        )
        return Consumer(database, applier)

    yield make
    for database in made:
        database.discard()


def ledger(db: Connection, item: Envelope) -> dict[str, Any] | None:
    return db.execute(
        "SELECT status, attempts, last_error FROM webhook_events"
        " WHERE provider = %s AND event_id = %s",
        (item.provider, item.event_id),
    ).fetchone()


def order(db: Connection, order_id: str) -> dict[str, Any] | None:
    return db.execute(
        "SELECT status, paid_amount, refunded_amount FROM orders WHERE id = %s", (order_id,)
    ).fetchone()


def payment_count(db: Connection, payment_id: str) -> int:
    found = db.execute(
        "SELECT count(*) AS n FROM payments WHERE provider_payment_id = %s", (payment_id,)
    ).fetchone()
    assert found is not None
    return int(found["n"])


class Running:
    """`action` in a thread, its result or error kept for the test's thread."""

    def __init__(self, action: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(action,), daemon=True)
        self._thread.start()

    def _run(self, action: Callable[[], Any]) -> None:
        try:
            self.result = action()
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            self.error = error

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self) -> None:
        self._thread.join(WAIT_SECONDS)
        assert not self._thread.is_alive(), "still running after its locks were let go"


def wait_for_lock(monitor: Connection, pid: int, running: Running) -> None:
    """Until PostgreSQL shows `pid` waiting for a lock (pg_stat_activity)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = monitor.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if found is not None and found["wait_event_type"] == "Lock":
            return
        assert not running.done, f"finished without waiting: {running.error or running.result}"
        assert time.monotonic() < deadline, "never waited for the lock"
        time.sleep(POLL_SECONDS)


def fail_once(db: Connection, item: Envelope) -> None:
    """An earlier attempt of `item` failed and was recorded (status `failed`)."""
    with db.transaction():
        record_failure(
            db,
            item,
            store(item.body, parse(item.body)),
            "OperationalError: lost",
            FailureKind.TRANSIENT,
        )


# --- the same event twice at once --------------------------------------------------


@pytest.mark.parametrize("failed_before", [False, True], ids=["new", "failed-before"])
def test_two_copies_of_one_event_at_once_apply_it_once(
    database_url: str, db: Connection, consumers: Callable[..., Consumer], failed_before: bool
) -> None:
    """An SQS redelivery and a DLQ redrive of one event in two containers: the second
    waits for the first's ledger row (its INSERT on the unique index, or its lock on
    the `failed` row) and, once the first commits, finds it applied."""
    insert_order(db, "order-twice", 2000)
    item = events.stripe("charge.refunded", intent="pi_twice", order_id="order-twice", refunded=700)
    if failed_before:
        fail_once(db, item)
    first, second = consumers(), consumers()
    finishes = interleave(
        database_url,
        [Row("orders", {"id": "order-twice"})],
        [
            Contender("first", first.pid, lambda: first.applier.apply(item)),
            Contender("second", second.pid, lambda: second.applier.apply(item)),
        ],
    )
    assert all(f.blocked for f in finishes), [f.waited_for for f in finishes]
    outcomes = [f.result for f in finishes if isinstance(f.result, Outcome)]
    assert len(outcomes) == 2, [f.describe() for f in finishes]
    assert sorted(o.duplicate for o in outcomes) == [False, True]
    assert order(db, "order-twice") == {
        "status": "partially_refunded",
        "paid_amount": 2000,
        "refunded_amount": 700,
    }
    assert ledger(db, item) == {
        "status": "applied",
        "attempts": 2 if failed_before else 1,
        "last_error": None,
    }
    first.ready()
    second.ready()


def test_a_copy_waiting_behind_a_copy_whose_connection_dies_applies_it_once(
    database_url: str, db: Connection, consumers: Callable[..., Consumer]
) -> None:
    """The first copy's connection is terminated while the second waits on its ledger
    row: the first's claim rolls back, the second inserts the row and applies; the
    first's retry is a duplicate."""
    insert_order(db, "order-killed", 2000)
    item = events.stripe("payment_intent.succeeded", intent="pi_killed", order_id="order-killed")
    first, second = consumers(), consumers()
    first_pid, second_pid = first.pid, second.pid
    with (
        psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as monitor,
        psycopg.connect(database_url) as holder,
    ):
        holder.execute("SELECT 1 FROM orders WHERE id = 'order-killed' FOR UPDATE")
        one = Running(lambda: first.applier.apply(item))
        wait_for_lock(monitor, first_pid, one)
        two = Running(lambda: second.applier.apply(item))
        wait_for_lock(monitor, second_pid, two)
        monitor.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
        one.join()
        holder.rollback()
        two.join()
    assert isinstance(one.error, DatabaseUnavailable), one.error
    assert two.error is None, two.error
    assert (two.result.status, two.result.duplicate) == (LedgerStatus.APPLIED, False)
    again = first.applier.apply(item)
    assert (again.status, again.duplicate) == (LedgerStatus.APPLIED, True)
    assert order(db, "order-killed") == {
        "status": "paid",
        "paid_amount": 2000,
        "refunded_amount": 0,
    }
    assert ledger(db, item) == {"status": "applied", "attempts": 1, "last_error": None}


# --- the connection lost in each round trip ----------------------------------------


def _block_claim(holder: Connection, item: Envelope) -> None:
    # Round trip 1: another transaction is inserting the same ledger row.
    claim(holder, item, store(item.body, parse(item.body)))


def _block_order_lock(holder: Connection, _: Envelope) -> None:
    # Round trip 2: the order's lock.
    holder.execute("SELECT 1 FROM orders WHERE id = 'order-lost' FOR UPDATE")


def _block_order_write(holder: Connection, _: Envelope) -> None:
    # Round trip 3: the order's UPDATE travels with COMMIT; a shop's trigger on it
    # waits for a lock the holder has.
    holder.execute("SELECT pg_advisory_xact_lock(4242)")


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(_block_claim, id="trip-1-claim"),
        pytest.param(_block_order_lock, id="trip-2-locks"),
        pytest.param(_block_order_write, id="trip-3-commit"),
    ],
)
def test_a_connection_lost_in_any_round_trip_writes_nothing_and_the_retry_applies_once(
    database_url: str,
    db: Connection,
    consumers: Callable[..., Consumer],
    block: Callable[[Connection, Envelope], None],
) -> None:
    insert_order(db, "order-lost", 2000)
    db.execute(
        "CREATE FUNCTION review_wait() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$"
    )
    db.execute(
        "CREATE TRIGGER review_wait AFTER UPDATE ON orders FOR EACH ROW"
        " EXECUTE FUNCTION review_wait()"
    )
    item = events.stripe("payment_intent.succeeded", intent="pi_lost", order_id="order-lost")
    consumer = consumers()
    pid = consumer.pid
    with (
        psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as monitor,
        psycopg.connect(database_url, row_factory=dict_row) as holder,
    ):
        block(holder, item)
        running = Running(lambda: consumer.applier.apply(item))
        wait_for_lock(monitor, pid, running)
        monitor.execute("SELECT pg_terminate_backend(%s)", (pid,))
        running.join()
        holder.rollback()
    assert isinstance(running.error, DatabaseUnavailable), running.error
    # Nothing of it: no ledger row (a lost connection is not the event's failure and
    # cannot be recorded on it), no payment, the order untouched.
    assert ledger(db, item) is None
    assert payment_count(db, "pi_lost") == 0
    assert order(db, "order-lost") == {"status": "pending", "paid_amount": 0, "refunded_amount": 0}
    assert consumer.applier.apply(item).status is LedgerStatus.APPLIED
    assert consumer.applier.apply(item).duplicate
    consumer.ready()
    assert order(db, "order-lost") == {"status": "paid", "paid_amount": 2000, "refunded_amount": 0}
    assert ledger(db, item) == {"status": "applied", "attempts": 1, "last_error": None}


# --- a statement failing mid-pipeline ----------------------------------------------


def test_a_statement_timeout_in_the_lock_trip_fails_transiently_and_the_connection_serves_on(
    database_url: str, db: Connection, consumers: Callable[..., Consumer]
) -> None:
    insert_order(db, "order-timeout", 2000)
    insert_order(db, "order-after", 2000)
    consumer = consumers(statement_timeout_ms=200)
    connection = consumer.database.connection()
    timed_out = events.stripe(
        "payment_intent.succeeded", intent="pi_timeout", order_id="order-timeout"
    )
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT 1 FROM orders WHERE id = 'order-timeout' FOR UPDATE")
        with pytest.raises(DatabaseUnavailable, match="QueryCanceled"):
            consumer.applier.apply(timed_out)
        holder.rollback()
    assert consumer.database.connection() is connection
    consumer.ready()
    assert ledger(db, timed_out) is None
    assert payment_count(db, "pi_timeout") == 0
    after = events.stripe("payment_intent.succeeded", intent="pi_after", order_id="order-after")
    assert consumer.applier.apply(after).status is LedgerStatus.APPLIED
    assert consumer.applier.apply(timed_out).status is LedgerStatus.APPLIED
    assert consumer.database.connection() is connection
    assert order(db, "order-timeout") == {
        "status": "paid",
        "paid_amount": 2000,
        "refunded_amount": 0,
    }


def _refuse_claim(db: Connection) -> Envelope:
    # Round trip 1: the ledger row's INSERT is refused (the failure row is not).
    db.execute(
        "ALTER TABLE webhook_events ADD CONSTRAINT review_refused"
        " CHECK (event_id <> 'evt_refused' OR status <> 'received')"
    )
    return events.stripe(
        "payment_intent.succeeded",
        intent="pi_refused",
        order_id="order-refused",
        event_id="evt_refused",
    )


def _refuse_payment(db: Connection) -> Envelope:
    # Round trip 2: the payment's placeholder is refused.
    db.execute(
        "ALTER TABLE payments ADD CONSTRAINT review_refused"
        " CHECK (provider_payment_id <> 'pi_refused')"
    )
    return events.stripe("payment_intent.succeeded", intent="pi_refused", order_id="order-refused")


@pytest.mark.parametrize(
    "refuse",
    [pytest.param(_refuse_claim, id="trip-1"), pytest.param(_refuse_payment, id="trip-2")],
)
def test_a_statement_refused_mid_pipeline_is_the_events_own_failure_and_the_next_event_applies(
    db: Connection, consumers: Callable[..., Consumer], refuse: Callable[[Connection], Envelope]
) -> None:
    insert_order(db, "order-refused", 2000)
    insert_order(db, "order-next", 2000)
    refused = refuse(db)
    consumer = consumers()
    connection = consumer.database.connection()
    with pytest.raises(psycopg.errors.CheckViolation):
        consumer.applier.apply(refused)
    consumer.ready()
    assert consumer.database.connection() is connection
    found = ledger(db, refused)
    assert found is not None
    assert (found["status"], found["attempts"]) == ("failed", 1)
    assert str(found["last_error"]).startswith("CheckViolation")
    assert payment_count(db, "pi_refused") == 0
    assert order(db, "order-refused") == {
        "status": "pending",
        "paid_amount": 0,
        "refunded_amount": 0,
    }
    following = events.stripe("payment_intent.succeeded", intent="pi_next", order_id="order-next")
    assert consumer.applier.apply(following).status is LedgerStatus.APPLIED
    assert order(db, "order-next") == {"status": "paid", "paid_amount": 2000, "refunded_amount": 0}


# --- a team's handler among hookline's functions -----------------------------------


class TeamRegistry(HandlerRegistry):
    """The built-in handlers, each wrapped by a team's handler that reads what the
    built-in wrote (raw SQL on context.connection), then runs `after`."""

    def __init__(self, wrap: bool, after: str | None = None) -> None:
        super().__init__()
        self.wrap = wrap
        self.after = after
        self.seen: list[dict[str, Any] | None] = []

    def get(self, provider: str, event_type: str) -> Handler | None:
        built_in = registry.get(provider, event_type)
        if built_in is None:
            return None

        def team(context: HandlerContext, event: Event) -> Outcome:
            outcome = built_in(context, event)
            self.seen.append(
                context.connection.execute(
                    "SELECT p.status AS payment, o.status AS order FROM payments p"
                    " JOIN orders o ON o.id = p.order_id WHERE p.provider_payment_id = 'pi_team'"
                ).fetchone()
            )
            if self.after is not None:
                context.connection.execute(self.after)
            return outcome

        # A team's decorator that copies the wrapped function's name and module.
        return functools.wraps(built_in)(team) if self.wrap else team


@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "functools.wraps"])
def test_a_teams_handler_sees_what_hookline_s_functions_wrote_before_it(
    db: Connection, consumers: Callable[..., Consumer], wrap: bool
) -> None:
    insert_order(db, "order-team", 2000)
    team = TeamRegistry(wrap)
    consumer = consumers(team)
    item = events.stripe("payment_intent.succeeded", intent="pi_team", order_id="order-team")
    assert consumer.applier.apply(item).status is LedgerStatus.APPLIED
    assert team.seen == [{"payment": "succeeded", "order": "paid"}]


@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "functools.wraps"])
@pytest.mark.parametrize(
    ("after", "error"),
    [
        ("SELECT 1/0", psycopg.errors.DivisionByZero),
        ("ROLLBACK", SessionChanged),
        ("SET LOCAL search_path TO public", SessionChanged),
    ],
)
def test_a_teams_handler_failing_after_hookline_s_functions_leaves_nothing(
    db: Connection,
    consumers: Callable[..., Consumer],
    wrap: bool,
    after: str,
    error: type[Exception],
) -> None:
    insert_order(db, "order-team", 2000)
    insert_order(db, "order-team-next", 2000)
    team = TeamRegistry(wrap, after)
    consumer = consumers(team)
    item = events.stripe("payment_intent.succeeded", intent="pi_team", order_id="order-team")
    with pytest.raises(error):
        consumer.applier.apply(item)
    found = ledger(db, item)
    assert found is not None
    assert (found["status"], found["attempts"]) == ("failed", 1)
    assert payment_count(db, "pi_team") == 0
    assert order(db, "order-team") == {"status": "pending", "paid_amount": 0, "refunded_amount": 0}
    team.after = None
    following = events.stripe(
        "payment_intent.succeeded", intent="pi_team_next", order_id="order-team-next"
    )
    assert consumer.applier.apply(following).status is LedgerStatus.APPLIED
    assert consumer.applier.apply(item).status is LedgerStatus.APPLIED
    assert order(db, "order-team")["status"] == "paid"  # type: ignore[index]


# --- the payment lock and a shop's triggers ----------------------------------------


def test_locking_an_existing_payment_fires_no_row_trigger_and_leaves_the_row_as_it_is(
    db: Connection, consumers: Callable[..., Consumer]
) -> None:
    """A shop may audit `payments` with triggers: only real inserts and updates fire
    them; a lock (a stale event's, say) neither fires one nor touches the row."""
    insert_order(db, "order-trig", 2000)
    db.execute("CREATE TABLE review_audit (operation text NOT NULL)")
    db.execute(
        "CREATE FUNCTION review_audit() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO review_audit VALUES (TG_OP); RETURN NEW; END $$"
    )
    db.execute(
        "CREATE TRIGGER review_audit BEFORE INSERT OR UPDATE ON payments FOR EACH ROW"
        " EXECUTE FUNCTION review_audit()"
    )
    consumer = consumers()

    def audited() -> list[str]:
        return [r["operation"] for r in db.execute("SELECT operation FROM review_audit")]

    def version() -> dict[str, Any] | None:
        return db.execute(
            "SELECT xmin::text AS xmin, updated_at FROM payments"
            " WHERE provider_payment_id = 'pi_trig'"
        ).fetchone()

    succeeded = events.stripe(
        "payment_intent.succeeded", intent="pi_trig", order_id="order-trig", at=10
    )
    assert consumer.applier.apply(succeeded).status is LedgerStatus.APPLIED
    assert audited() == ["INSERT", "UPDATE"]
    before = version()
    late = events.stripe("payment_intent.processing", intent="pi_trig", order_id="order-trig", at=5)
    assert consumer.applier.apply(late).status is LedgerStatus.STALE
    assert audited() == ["INSERT", "UPDATE"]
    assert version() == before
    refund = events.stripe(
        "charge.refunded", intent="pi_trig", order_id="order-trig", refunded=500, at=20
    )
    assert consumer.applier.apply(refund).status is LedgerStatus.APPLIED
    assert audited() == ["INSERT", "UPDATE", "UPDATE"]


def test_a_stale_event_in_a_teams_handler_locks_no_order(
    db: Connection, consumers: Callable[..., Consumer]
) -> None:
    """As before batching: a team's handler that applies a stale event holds the
    payment's lock only, so locking another payment next keeps the lock order (and
    another transaction waiting on the order cannot deadlock with it)."""
    insert_order(db, "order-stale-team", 2000)
    order_free: list[bool] = []

    class StaleTeam(HandlerRegistry):
        def get(self, provider: str, event_type: str) -> Handler | None:
            built_in = registry.get(provider, event_type)
            assert built_in is not None

            def team(context: HandlerContext, event: Event) -> Outcome:
                outcome = built_in(context, event)
                try:
                    db.execute(
                        "SELECT 1 FROM orders WHERE id = 'order-stale-team' FOR UPDATE NOWAIT"
                    )
                    order_free.append(True)
                except psycopg.errors.LockNotAvailable:
                    order_free.append(False)
                return outcome

            return team

    consumer = consumers(StaleTeam())
    succeeded = events.stripe(
        "payment_intent.succeeded", intent="pi_stale_team", order_id="order-stale-team", at=10
    )
    late = events.stripe(
        "payment_intent.processing", intent="pi_stale_team", order_id="order-stale-team", at=5
    )
    assert consumer.applier.apply(succeeded).status is LedgerStatus.APPLIED
    assert consumer.applier.apply(late).status is LedgerStatus.STALE
    assert order_free == [False, True]


def _with(item: Envelope, old: str, new: str) -> Envelope:
    assert old in item.body
    return item.model_copy(update={"body": item.body.replace(old, new)})


@pytest.mark.parametrize(
    "where",
    [
        pytest.param('"order-nul"', id="order-id"),
        pytest.param('"pi_nul"', id="payment-id"),
        pytest.param('"usd"', id="currency"),
    ],
)
def test_a_nul_character_in_a_value_the_handler_writes_fails_cleanly_and_the_next_event_applies(
    db: Connection, consumers: Callable[..., Consumer], where: str
) -> None:
    """JSON may carry \\u0000; PostgreSQL text cannot. Wherever the handler puts it,
    the event fails on its own (recorded, never half-written) and the connection
    serves the next event."""
    insert_order(db, "order-nul", 2000)
    insert_order(db, "order-nul-next", 2000)
    item = events.stripe("payment_intent.succeeded", intent="pi_nul", order_id="order-nul")
    hostile = _with(item, where, where[:-1] + '\\u0000x"')
    consumer = consumers()
    with pytest.raises(
        MalformedEvent, match=r"NUL or a lone surrogate|not a three-letter currency"
    ):
        consumer.applier.apply(hostile)
    consumer.ready()
    found = ledger(db, hostile)
    assert found is not None
    assert (found["status"], found["attempts"]) == ("failed", 1), found
    assert payment_count(db, "pi_nul") == 0
    assert order(db, "order-nul") == {"status": "pending", "paid_amount": 0, "refunded_amount": 0}
    following = events.stripe(
        "payment_intent.succeeded", intent="pi_nul_next", order_id="order-nul-next"
    )
    assert consumer.applier.apply(following).status is LedgerStatus.APPLIED


@pytest.mark.parametrize("trip", [2, 3])
def test_failures_while_statements_get_prepared_never_poison_the_connection(
    db: Connection, consumers: Callable[..., Consumer], trip: int
) -> None:
    """psycopg prepares a statement the fifth time it runs; a failing pipeline skips
    the statements behind the failure, prepared or not. Events that fail and events
    that apply alternate across that threshold on one connection: each good one applies."""
    if trip == 2:
        db.execute(
            "ALTER TABLE payments ADD CONSTRAINT review_refused"
            " CHECK (provider_payment_id NOT LIKE 'pi_bad%%')"
        )
    else:
        db.execute(
            "ALTER TABLE orders ADD CONSTRAINT review_refused"
            " CHECK (id NOT LIKE 'order-bad%%' OR status = 'pending')"
        )
    consumer = consumers()
    connection = consumer.database.connection()
    for n in range(12):
        insert_order(db, f"order-good-{n}", 2000)
        insert_order(db, f"order-bad-{n}", 2000)
        good = events.stripe(
            "payment_intent.succeeded", intent=f"pi_good_{n}", order_id=f"order-good-{n}"
        )
        bad = events.stripe(
            "payment_intent.succeeded", intent=f"pi_bad_{n}", order_id=f"order-bad-{n}"
        )
        assert consumer.applier.apply(good).status is LedgerStatus.APPLIED, n
        with pytest.raises(psycopg.errors.CheckViolation):
            consumer.applier.apply(bad)
        consumer.ready()
    assert consumer.database.connection() is connection
