"""Round trips per event, counted on the wire: the latency an event costs in a VPC.

On AWS every PostgreSQL round trip (the client sends, then waits for the
server's answer before it can go on) costs about half a millisecond, whatever
the statement, so their count per event sets the consumer's latency. They are
counted here from libpq's own protocol trace of the consumer's connection
(`WireTrace`), never from hookline's code: one round trip is a run of messages
the client sent followed by a run of messages the server answered. A pipeline
of ten statements is one; ten statements sent one after the other are ten.

DynamoDB calls are counted with botocore's event hooks on the real boto3 client
(against moto): Powertools' idempotency needs one conditional PutItem (the
INPROGRESS record) and one UpdateItem (COMPLETED) per new event, and a
duplicate's PutItem fails its condition and returns the stored record itself
(`ReturnValuesOnConditionCheckFailure`), so there is nothing to read back.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any

import boto3
import psycopg
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from hookline.consumer.apply import Applier
from hookline.consumer.batch import Consumer
from hookline.database import Connection, Database
from hookline.envelope import Envelope
from hookline.handlers import Outcome
from hookline.lambda_events import sqs_event
from hookline.ledger import LedgerStatus
from hookline.local.sandbox import ProviderSandbox, mercadopago_payment
from hookline.queue import EventQueue
from psycopg.pq import Trace

from tests.conftest import MERCADOPAGO_TOKEN
from tests.support import events
from tests.support.apis import sandbox_apis
from tests.support.events import T0
from tests.support.lambda_context import FakeLambdaContext
from tests.support.postgres import insert_order
from tests.support.stack import Stack

# One round trip with BEGIN, the ledger row and the session's facts; one that
# locks the payment and its order and reads the order's payments; one that
# writes them, finishes the ledger row and commits.
MAX_ROUND_TRIPS = 3


class WireTrace:
    """libpq's protocol trace of one connection while the block runs.

    `round_trips`: how many times the client sent something and then read the
    server's answer (each frontend run followed by a backend run); `statements`:
    the statements it sent (simple queries and extended-protocol executes).
    """

    def __init__(self, connection: Connection) -> None:
        self._pgconn = connection.pgconn
        self.lines: list[str] = []

    def __enter__(self) -> WireTrace:
        self._file = tempfile.TemporaryFile()
        # libpq closes the stream it traces to on untrace: give it its own descriptor.
        self._pgconn.trace(os.dup(self._file.fileno()))
        self._pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._pgconn.untrace()
        self._file.seek(0)
        self.lines = self._file.read().decode("utf-8", "replace").splitlines()
        self._file.close()

    def _messages(self) -> list[tuple[str, str]]:
        """(direction, message type) per traced message: F from the client, B from the server."""
        messages = []
        for line in self.lines:
            fields = line.split("\t")
            if len(fields) >= 3 and fields[0] in ("F", "B"):
                messages.append((fields[0], fields[2].split(" ")[0]))
        return messages

    @property
    def round_trips(self) -> int:
        trips, previous = 0, ""
        for direction, _ in self._messages():
            if direction == "B" and previous == "F":
                trips += 1
            previous = direction
        return trips

    @property
    def statements(self) -> int:
        return sum(1 for d, kind in self._messages() if d == "F" and kind in ("Query", "Execute"))

    def sent(self) -> list[str]:
        """What the client sent, for a failure's message."""
        return [line for line in self.lines if line.startswith("F\t") and "Parse" in line]


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(lambda: database_url)
    yield database
    database.discard()


@pytest.fixture
def applier(database: Database, mercadopago_api: ProviderSandbox) -> Applier:
    return Applier(
        database,
        sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN, retries=0),
        clock=lambda: T0 + timedelta(hours=1),
    )


def counted(database: Database, run: Callable[[], Outcome]) -> tuple[Outcome, WireTrace]:
    """Run one apply on the (already open) connection, traced."""
    connection = database.connection()
    with WireTrace(connection) as trace:
        outcome = run()
    assert database.connection() is connection, "the apply opened another connection"
    return outcome, trace


@dataclass(frozen=True)
class Case:
    name: str
    # Set up the rows and the API the event needs; returns the envelope to count and
    # any envelopes to apply first (uncounted).
    prepare: Callable[[Connection, ProviderSandbox], tuple[Envelope, list[Envelope]]]
    status: LedgerStatus
    duplicate: bool = False


def _stripe_succeeded(db: Connection, _: ProviderSandbox) -> tuple[Envelope, list[Envelope]]:
    insert_order(db, "order-rt-stripe", 2000)
    return events.stripe(
        "payment_intent.succeeded", intent="pi_rt_stripe", order_id="order-rt-stripe"
    ), []


def _square_payment(db: Connection, _: ProviderSandbox) -> tuple[Envelope, list[Envelope]]:
    insert_order(db, "order-rt-square", 1500)
    return events.square_payment("COMPLETED", payment="sq_rt", order_id="order-rt-square"), []


def _shopify_order(_db: Connection, _: ProviderSandbox) -> tuple[Envelope, list[Envelope]]:
    # Shopify is the order system: the order row is created by the event itself.
    return events.shopify_order("orders/paid", order=9001), []


def _mercadopago(db: Connection, api: ProviderSandbox) -> tuple[Envelope, list[Envelope]]:
    insert_order(db, "order-rt-mp", 500, "BRL")
    api.payments["1320470599"] = mercadopago_payment(
        "1320470599", "approved", "5", external_reference="order-rt-mp"
    )
    return events.mercadopago("1320470599"), []


def _stale(db: Connection, _: ProviderSandbox) -> tuple[Envelope, list[Envelope]]:
    insert_order(db, "order-rt-stale", 2000)
    succeeded = events.stripe(
        "payment_intent.succeeded", intent="pi_rt_stale", order_id="order-rt-stale", at=10
    )
    late = events.stripe(
        "payment_intent.processing", intent="pi_rt_stale", order_id="order-rt-stale", at=5
    )
    return late, [succeeded]


def _duplicate(db: Connection, _: ProviderSandbox) -> tuple[Envelope, list[Envelope]]:
    insert_order(db, "order-rt-dup", 2000)
    event = events.stripe("payment_intent.succeeded", intent="pi_rt_dup", order_id="order-rt-dup")
    return event, [event]


def _orphan(_db: Connection, _: ProviderSandbox) -> tuple[Envelope, list[Envelope]]:
    return events.stripe(
        "payment_intent.succeeded", intent="pi_rt_orphan", order_id="order-rt-unknown"
    ), []


CASES = [
    Case("stripe payment_intent.succeeded with an order", _stripe_succeeded, LedgerStatus.APPLIED),
    Case("square payment", _square_payment, LedgerStatus.APPLIED),
    Case("shopify order", _shopify_order, LedgerStatus.APPLIED),
    Case("mercadopago payment", _mercadopago, LedgerStatus.APPLIED),
    Case("stale event", _stale, LedgerStatus.STALE),
    Case("duplicate", _duplicate, LedgerStatus.APPLIED, duplicate=True),
    Case("orphan", _orphan, LedgerStatus.ORPHANED),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_an_event_costs_at_most_three_round_trips(
    case: Case,
    applier: Applier,
    database: Database,
    db: Connection,
    mercadopago_api: ProviderSandbox,
) -> None:
    event, before = case.prepare(db, mercadopago_api)
    for earlier in before:
        applier.apply(earlier)
    outcome, trace = counted(database, lambda: applier.apply(event))
    assert (outcome.status, outcome.duplicate) == (case.status, case.duplicate)
    assert trace.round_trips <= MAX_ROUND_TRIPS, "\n".join(
        [f"{trace.round_trips} round trips, {trace.statements} statements:", *trace.sent()]
    )


def test_a_pipelined_apply_writes_what_a_statement_at_a_time_apply_writes(
    applier: Applier, database: Database, db: Connection
) -> None:
    """The batching changes when statements travel, not what they do: the rows are as
    the rules say (an applied payment and a paid order), and the transaction committed."""
    insert_order(db, "order-rt-rows", 2000)
    event = events.stripe("payment_intent.succeeded", intent="pi_rt_rows", order_id="order-rt-rows")
    outcome, _ = counted(database, lambda: applier.apply(event))
    assert outcome.order_status == "paid"
    assert db.execute(
        "SELECT status, paid_amount FROM orders WHERE id = 'order-rt-rows'"
    ).fetchone() == {"status": "paid", "paid_amount": 2000}
    assert db.execute(
        "SELECT status, captured_amount FROM payments WHERE provider_payment_id = 'pi_rt_rows'"
    ).fetchone() == {"status": "succeeded", "captured_amount": 2000}
    ledger = db.execute(
        "SELECT status, order_id FROM webhook_events WHERE event_id = %s", (event.event_id,)
    ).fetchone()
    assert ledger == {"status": "applied", "order_id": "order-rt-rows"}
    assert database.connection().info.transaction_status.name == "IDLE"


class DynamoCalls:
    """DynamoDB operations a boto3 client made, by name (botocore's before-call hook)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        client.meta.events.register("before-call.dynamodb", self._called)

    def _called(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def take(self) -> Counter[str]:
        taken, self.calls = Counter(self.calls), []
        return taken


def _batch(items: list[Envelope], stack: Stack) -> dict[str, Any]:
    messages = [
        {
            "MessageId": f"m-{item.event_id}-{n}",
            "ReceiptHandle": f"r-{item.event_id}-{n}",
            "Body": item.to_message_body(),
            "MD5OfBody": "0" * 32,
            "Attributes": {
                "ApproximateReceiveCount": "1",
                "MessageGroupId": item.group_id,
                "MessageDeduplicationId": item.deduplication_id,
            },
        }
        for n, item in enumerate(items)
    ]
    return sqs_event(messages, stack.queue_arn, "us-east-1")


def test_dynamodb_calls_per_event_are_powertools_minimum(
    stack: Stack, applier: Applier, database: Database, db: Connection
) -> None:
    client = boto3.client("dynamodb")
    dynamo = DynamoCalls(client)
    consumer = Consumer(
        applier,
        DynamoDBPersistenceLayer(table_name=stack.idempotency_table, boto3_client=client),
        EventQueue(stack.queue_url, stack.sqs),
    )
    insert_order(db, "order-rt-ddb", 2000)
    event = events.stripe("payment_intent.succeeded", intent="pi_rt_ddb", order_id="order-rt-ddb")
    context: Any = FakeLambdaContext(function_name="hookline-ConsumerFunction", timeout_seconds=30)

    database.connection()  # opened beforehand: the count is per event, not per container
    with WireTrace(database.connection()) as trace:
        answer = consumer.handle(_batch([event], stack), context)
    assert answer == {"batchItemFailures": []}
    # A new event: INPROGRESS (a conditional put), then COMPLETED with the answer.
    assert dynamo.take() == Counter({"PutItem": 1, "UpdateItem": 1})
    # The whole handler path (batch, idempotency, apply) adds no round trip of its own.
    assert trace.round_trips <= MAX_ROUND_TRIPS

    with WireTrace(database.connection()) as again:
        answer = consumer.handle(_batch([event], stack), context)
    assert answer == {"batchItemFailures": []}
    # A duplicate: the put fails its condition and returns the stored record; no read.
    assert dynamo.take() == Counter({"PutItem": 1})
    # Answered from the idempotency record: PostgreSQL is not asked at all.
    assert again.round_trips == 0
    applied = db.execute(
        "SELECT count(*) AS n FROM webhook_events WHERE event_id = %s", (event.event_id,)
    ).fetchone()
    assert applied == {"n": 1}


def test_a_write_refused_in_the_last_round_trip_rolls_everything_back(
    applier: Applier, database: Database, db: Connection
) -> None:
    """The order's write travels with COMMIT; when PostgreSQL refuses it, the COMMIT
    in the same pipeline never runs, the event fails with nothing of it written, and
    the connection is left idle and usable for the next event."""
    insert_order(db, "order-rt-refused", 2000)
    insert_order(db, "order-rt-next", 2000)
    db.execute(
        "ALTER TABLE orders ADD CONSTRAINT refuses_this_one"
        " CHECK (id <> 'order-rt-refused' OR status = 'pending')"
    )
    refused = events.stripe(
        "payment_intent.succeeded", intent="pi_rt_refused", order_id="order-rt-refused"
    )
    with pytest.raises(psycopg.errors.CheckViolation):
        applier.apply(refused)
    assert database.connection().info.transaction_status.name == "IDLE"
    assert (
        db.execute(
            "SELECT status FROM payments WHERE provider_payment_id = 'pi_rt_refused'"
        ).fetchall()
        == []
    )
    assert db.execute(
        "SELECT status, attempts, last_error LIKE 'CheckViolation%%' AS refused"
        " FROM webhook_events WHERE event_id = %s",
        (refused.event_id,),
    ).fetchone() == {"status": "failed", "attempts": 1, "refused": True}

    following = events.stripe(
        "payment_intent.succeeded", intent="pi_rt_next", order_id="order-rt-next"
    )
    assert applier.apply(following).status is LedgerStatus.APPLIED
    assert db.execute("SELECT status FROM orders WHERE id = 'order-rt-next'").fetchone() == {
        "status": "paid"
    }


def test_the_session_check_after_a_teams_code_travels_with_the_commit(
    database_url: str, mercadopago_api: ProviderSandbox, db: Connection
) -> None:
    """With a team's modules loaded the session is fingerprinted after every event;
    read behind the COMMIT, it costs no round trip of its own."""
    database = Database(lambda: database_url, verify_sessions=True)
    applier = Applier(
        database,
        sandbox_apis(mercadopago_api.mercadopago_url, MERCADOPAGO_TOKEN, retries=0),
        clock=lambda: T0 + timedelta(hours=1),
    )
    try:
        insert_order(db, "order-rt-verify", 2000)
        event = events.stripe(
            "payment_intent.succeeded", intent="pi_rt_verify", order_id="order-rt-verify"
        )
        outcome, trace = counted(database, lambda: applier.apply(event))
        assert outcome.status is LedgerStatus.APPLIED
        assert trace.round_trips <= MAX_ROUND_TRIPS
        assert "pg_settings" in "\n".join(trace.sent())
    finally:
        database.discard()
