"""Consumer speed against a floor measured in the same run. Prints; asserts nothing.

Ours: the whole ConsumerFunction handler (Powertools logger, metrics, batch
processor, idempotency with an in-memory persistence layer, envelope parsing,
the Stripe handler) applying batches of 10 `payment_intent.succeeded` events
to real PostgreSQL, one transaction per event.

Floor: the very SQL statements that path ran for the same events (recorded in
a separate pass), replayed directly through psycopg on one connection, one
transaction per event, against another database on the same server.

The two alternate batch by batch, so drifting disk and CPU noise on a shared
machine (commit latency here varies by 2x between runs) hits both alike.
Goal: ratio <= 1.5. The floor sends its statements one at a time; the consumer
pipelines them (hookline.database.StatementQueue), so on a real network it pulls
ahead of its floor by the round trips it saves.

Also counted, not timed (on AWS each PostgreSQL round trip costs ~0.5 ms in a VPC,
so their count sets the latency):
- PostgreSQL round trips per event, from libpq's protocol trace of the consumer's
  connection (tests/integration/test_round_trips.py's WireTrace) over the
  recording pass, against a floor of 1 (BEGIN, every statement and COMMIT in one
  pipeline: possible only if nothing read decided a write on the client);
- DynamoDB calls per event, with botocore's hooks on the real boto3 client against
  moto, against the Powertools idempotency minimum of 2 (a conditional PutItem
  for INPROGRESS, an UpdateItem for COMPLETED).

    .venv/bin/python bench/consumer.py
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: E402
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import (  # noqa: E402
    BasePersistenceLayer,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (  # noqa: E402
    DataRecord,
)
from psycopg.rows import dict_row  # noqa: E402

from bench.table import Row, print_table  # noqa: E402
from tests.integration.test_round_trips import DynamoCalls, WireTrace  # noqa: E402
from tests.support import events  # noqa: E402
from tests.support.lambda_context import FakeLambdaContext  # noqa: E402
from tests.support.postgres import (  # noqa: E402
    PostgresServer,
    fresh_database,
    migrated_template,
)

BATCH = 10
EVENTS_PER_ROUND = 500
ROUNDS = 5


class InMemoryPersistenceLayer(BasePersistenceLayer):
    """Powertools idempotency records in a dict: the consumer's logic without DynamoDB."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.records: dict[str, DataRecord] = {}

    def _get_record(self, idempotency_key: str) -> DataRecord:
        try:
            return self.records[idempotency_key]
        except KeyError:
            raise IdempotencyItemNotFoundError from None

    def _put_record(self, data_record: DataRecord) -> None:
        existing = self.records.get(data_record.idempotency_key)
        if existing is not None and not existing.is_expired:
            raise IdempotencyItemAlreadyExistsError
        self.records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        self.records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        self.records.pop(data_record.idempotency_key, None)


class RecordingConnection(psycopg.Connection[Any]):
    """Notes every statement, grouped by event (each starts with its ledger claim)."""

    transactions: ClassVar[list[list[tuple[Any, Any]]]] = []

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if isinstance(query, str) and query.startswith("INSERT INTO webhook_events"):
            RecordingConnection.transactions.append([])
        if RecordingConnection.transactions:  # not the session's set-up when it connects
            RecordingConnection.transactions[-1].append((query, params))
        return super().execute(query, params, **kwargs)


def sqs_batches(items: list[Any]) -> list[dict[str, Any]]:
    from hookline.lambda_events import sqs_event

    batches = []
    for start in range(0, len(items), BATCH):
        messages = [
            {
                "MessageId": f"m-{item.event_id}",
                "ReceiptHandle": f"r-{item.event_id}",
                "Body": item.to_message_body(),
                "MD5OfBody": "0" * 32,
                "Attributes": {
                    "ApproximateReceiveCount": "1",
                    "MessageGroupId": item.group_id,
                    "MessageDeduplicationId": item.deduplication_id,
                },
            }
            for item in items[start : start + BATCH]
        ]
        batches.append(sqs_event(messages, "arn:aws:sqs:us-east-1:1:q.fifo", "us-east-1"))
    return batches


def make_events(tag: str, count: int) -> list[Any]:
    return [
        events.stripe(
            "payment_intent.succeeded", intent=f"pi_{tag}_{n}", order_id=f"order-{tag}-{n}"
        )
        for n in range(count)
    ]


def seed_orders(url: str, order_ids: list[str]) -> None:
    with psycopg.connect(url, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO orders (id, amount, currency) VALUES (%s, 2000, 'USD')",
            [(order_id,) for order_id in order_ids],
        )


def build_handler(url: str, persistence: BasePersistenceLayer | None = None) -> tuple[Any, Any]:
    """The handler as functions/consumer/app.py wires it, and its Database."""
    from hookline.clients.provider_apis import ProviderApis
    from hookline.consumer.apply import Applier
    from hookline.consumer.batch import Consumer
    from hookline.database import Database
    from hookline.observability import logger, metrics, tracer
    from hookline.queue import EventQueue

    database = Database(lambda: url)
    consumer = Consumer(
        Applier(database, ProviderApis(lambda key: "unused")),
        persistence or InMemoryPersistenceLayer(),
        EventQueue("unused", client=None),  # type: ignore[arg-type]  # no failures here
    )

    # The same decorators as functions/consumer/app.py.
    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return consumer.handle(event, context)

    return handler, database


def dynamodb_calls_per_event(url: str, items: list[Any]) -> float:
    """The consumer with Powertools' DynamoDB persistence layer on moto: calls per event."""
    import boto3
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        calls = DynamoCalls(client)
        persistence = DynamoDBPersistenceLayer(table_name="idempotency", boto3_client=client)
        handler, database = build_handler(url, persistence)
        for batch in sqs_batches(items):
            run_ours(handler, batch)
        database.discard()
        return sum(calls.take().values()) / len(items)


def run_ours(handler: Any, batch: dict[str, Any]) -> float:
    """One batch; log lines and metrics are formatted and written, to /dev/null."""
    context = FakeLambdaContext(function_name="bench-consumer", timeout_seconds=900)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        start = time.perf_counter()
        response = handler(batch, context)
        elapsed = time.perf_counter() - start
    assert response == {"batchItemFailures": []}, response
    return elapsed


def run_floor(connection: Any, transactions: list[list[tuple[Any, Any]]]) -> float:
    start = time.perf_counter()
    for statements in transactions:
        with connection.transaction():
            for query, params in statements:
                connection.execute(query, params)
    return time.perf_counter() - start


def run_round(
    handler: Any, floor: Any, items: list[Any], transactions: list[list[tuple[Any, Any]]]
) -> tuple[float, float]:
    """Per-event seconds (ours, floor), alternating batch by batch."""
    ours_total = floor_total = 0.0
    for index, batch in enumerate(sqs_batches(items)):
        ours_total += run_ours(handler, batch)
        floor_total += run_floor(floor, transactions[index * BATCH : (index + 1) * BATCH])
    return ours_total / len(items), floor_total / len(items)


def rows() -> list[Row]:
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "hookline")
    import logging

    from hookline.observability import logger

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    handler.stream = open(os.devnull, "w")  # noqa: SIM115 - for the whole run

    rounds = [make_events(f"r{r}", EVENTS_PER_ROUND) for r in range(ROUNDS + 1)]
    dynamo_items = make_events("ddb", 100)
    with (
        PostgresServer.start() as server,
        migrated_template(server) as template,
        fresh_database(server, template) as ours_url,
        fresh_database(server, template) as floor_url,
        fresh_database(server, template) as record_url,
        fresh_database(server, template) as dynamo_url,
    ):
        every = [item for round_items in rounds for item in round_items]
        order_ids = [f"order-r{r}-{n}" for r in range(ROUNDS + 1) for n in range(EVENTS_PER_ROUND)]
        for url in (ours_url, floor_url, record_url):
            seed_orders(url, order_ids)
        seed_orders(dynamo_url, [f"order-ddb-{n}" for n in range(len(dynamo_items))])

        # Record the statements the consumer runs, per event, on a third database,
        # and count its round trips on the wire.
        real_connect = psycopg.connect
        setattr(psycopg, "connect", RecordingConnection.connect)  # noqa: B010
        try:
            recorder, recorder_database = build_handler(record_url)
            with WireTrace(recorder_database.connection()) as trace:
                for round_items in rounds:
                    for batch in sqs_batches(round_items):
                        run_ours(recorder, batch)
        finally:
            setattr(psycopg, "connect", real_connect)  # noqa: B010
        recorded = RecordingConnection.transactions
        assert len(recorded) == len(every), (len(recorded), len(every))
        round_trips = trace.round_trips / len(every)

        measured, _ = build_handler(ours_url)
        ours_times, floor_times = [], []
        with psycopg.connect(floor_url, autocommit=True, row_factory=dict_row) as replay:
            # Round 0 warms both paths (connection, caches, prepared statements).
            for r in range(ROUNDS + 1):
                span = recorded[r * EVENTS_PER_ROUND : (r + 1) * EVENTS_PER_ROUND]
                ours_time, floor_time = run_round(measured, replay, rounds[r], span)
                if r:
                    ours_times.append(ours_time)
                    floor_times.append(floor_time)
        with psycopg.connect(ours_url) as check:
            applied = check.execute(
                "SELECT count(*) FROM webhook_events WHERE status = 'applied'"
            ).fetchone()
        assert applied is not None
        assert applied[0] == len(every), applied
        statements = statistics.mean(len(t) for t in recorded)
        dynamo_calls = dynamodb_calls_per_event(dynamo_url, dynamo_items)

    ours, floor = statistics.median(ours_times), statistics.median(floor_times)
    ratios = [o / f for o, f in zip(ours_times, floor_times, strict=True)]
    print(f"SQL statements per event (recorded): {statements:.1f}, one transaction each")
    print(f"per-round time ratios: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"python {sys.version.split()[0]}, server {server.admin_url.split('@')[-1]}")
    return [
        Row(
            f"consumer per event (median of {ROUNDS} x {EVENTS_PER_ROUND}, batches of {BATCH})",
            ours * 1e6,
            floor * 1e6,
            "us",
            "<= 1.5x",
            "the same SQL via psycopg, a statement at a time",
        ),
        Row(
            "consumer PostgreSQL round trips per event",
            round_trips,
            1.0,
            "per event",
            "<= 3.0x",
            "one pipeline: BEGIN .. COMMIT",
        ),
        Row(
            "consumer DynamoDB calls per event",
            dynamo_calls,
            2.0,
            "per event",
            "<= 1.0x",
            "Powertools idempotency: PutItem + UpdateItem",
        ),
    ]


if __name__ == "__main__":
    print_table(rows())
