"""ConsumerFunction end to end: moto SQS and DynamoDB from template.yaml, real PostgreSQL."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hookline.consumer.batch import RetryPolicy
from hookline.consumer.build import consumer
from hookline.database import Connection
from hookline.envelope import Envelope
from hookline.handlers import Event, HandlerContext, Outcome, registry
from psycopg.conninfo import make_conninfo

from tests.support import events
from tests.support.lambda_context import FakeLambdaContext
from tests.support.pipeline import Pipeline
from tests.support.postgres import PostgresServer, insert_order
from tests.support.tcp_proxy import TcpProxy


def statuses(db: Connection) -> dict[str, str]:
    rows = db.execute("SELECT event_id, status FROM webhook_events").fetchall()
    return {r["event_id"]: r["status"] for r in rows}


def send_again(pipeline: Pipeline, item: Envelope, tag: str) -> None:
    """Queue the same envelope under a new deduplication id (as a redrive or replay does)."""
    pipeline.stack.sqs.send_message(
        QueueUrl=pipeline.stack.queue_url,
        MessageBody=item.to_message_body(),
        MessageDeduplicationId=f"{item.deduplication_id[:100]}-{tag}",
        MessageGroupId=item.group_id,
    )


def failures(response: dict[str, object] | None) -> set[str]:
    assert response is not None
    items = response["batchItemFailures"]
    assert isinstance(items, list)
    return {item["itemIdentifier"] for item in items}


def metric_names(output: pytest.CaptureFixture[str]) -> list[str]:
    names = []
    for line in output.readouterr().out.splitlines():
        if line.startswith("{") and "_aws" in line:
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                names += [m["Name"] for m in directive["Metrics"] if document.get(m["Name"])]
    return names


def test_lifecycle_is_applied_in_order(pipeline: Pipeline, db: Connection) -> None:
    insert_order(db, "order-1001", 2000)
    lifecycle = [events.stripe(t, at=i) for i, t in enumerate(
        ["payment_intent.created", "payment_intent.processing", "payment_intent.succeeded"]
    )]  # fmt: skip
    pipeline.send(lifecycle)
    pipeline.drain()
    assert set(statuses(db).values()) == {"applied"}
    assert pipeline.responses[0] == {"batchItemFailures": []}
    paid = db.execute("SELECT status, paid_amount FROM orders").fetchone()
    assert paid == {"status": "paid", "paid_amount": 2000}


def test_same_event_twice_in_one_batch_applies_once(pipeline: Pipeline, db: Connection) -> None:
    insert_order(db, "order-1001", 2000)
    item = events.stripe("payment_intent.succeeded")
    pipeline.send([item])
    send_again(pipeline, item, "redrive-1")
    messages = pipeline.receive()
    assert len(messages) == 2
    assert pipeline.invoke(messages) == {"batchItemFailures": []}
    row = db.execute("SELECT status, attempts FROM webhook_events").fetchone()
    assert row == {"status": "applied", "attempts": 1}


def test_same_event_in_two_batches_applies_once(
    pipeline: Pipeline, db: Connection, output: pytest.CaptureFixture[str]
) -> None:
    insert_order(db, "order-1001", 2000)
    item = events.stripe("payment_intent.succeeded")
    pipeline.send([item])
    pipeline.drain()
    output.readouterr()
    send_again(pipeline, item, "later")
    pipeline.drain()
    assert "EventsDuplicate" in metric_names(output)
    row = db.execute("SELECT status, attempts FROM webhook_events").fetchone()
    assert row == {"status": "applied", "attempts": 1}


def test_same_event_after_its_idempotency_record_expired_applies_once(
    pipeline: Pipeline, db: Connection, output: pytest.CaptureFixture[str]
) -> None:
    insert_order(db, "order-1001", 2000)
    item = events.stripe("charge.refunded", refunded=500)
    pipeline.send([item])
    pipeline.drain()
    table = pipeline.stack.idempotency_table
    records = pipeline.stack.dynamodb.scan(TableName=table)["Items"]
    assert len(records) == 1
    pipeline.stack.dynamodb.delete_item(TableName=table, Key={"id": records[0]["id"]})
    output.readouterr()
    send_again(pipeline, item, "after-expiry")
    pipeline.drain()
    assert "EventsDuplicate" in metric_names(output)
    row = db.execute("SELECT attempts FROM webhook_events").fetchone()
    assert row == {"attempts": 1}
    assert db.execute("SELECT refunded_amount FROM orders").fetchone() == {"refunded_amount": 500}


def test_idempotency_store_outage_falls_back_to_the_ledger(
    pipeline: Pipeline, db: Connection, output: pytest.CaptureFixture[str]
) -> None:
    insert_order(db, "order-1001", 2000)
    pipeline.stack.dynamodb.delete_table(TableName=pipeline.stack.idempotency_table)
    item = events.stripe("payment_intent.succeeded")
    pipeline.send([item])
    send_again(pipeline, item, "dup")
    pipeline.drain()
    assert "IdempotencyUnavailable" in metric_names(output)
    assert db.execute("SELECT status, attempts FROM webhook_events").fetchone() == {
        "status": "applied",
        "attempts": 1,
    }


def test_shuffled_lifecycles_with_duplicates_converge(pipeline: Pipeline, db: Connection) -> None:
    steps = ["payment_intent.created", "payment_intent.processing",
             "payment_intent.succeeded", "charge.refunded"]  # fmt: skip
    shuffler = random.Random(7)
    for number in range(6):
        insert_order(db, f"order-{number}", 2000)
        lifecycle = [
            events.stripe(step, intent=f"pi_{number}", order_id=f"order-{number}",
                          refunded=2000, at=i)
            for i, step in enumerate(steps)
        ]  # fmt: skip
        shuffler.shuffle(lifecycle)
        pipeline.send(lifecycle)
        send_again(pipeline, lifecycle[0], "dup")
    pipeline.drain()
    rows = db.execute("SELECT status, refunded_amount FROM orders").fetchall()
    assert rows == [{"status": "refunded", "refunded_amount": 2000}] * 6
    assert db.execute("SELECT count(*) AS n FROM webhook_events").fetchone() == {"n": 24}


def test_a_poison_record_fails_only_its_own_group(
    pipeline: Pipeline, db: Connection, output: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b", "c"):
        insert_order(db, f"order-{name}", 2000)
    poison = events.envelope(
        "stripe",
        "payment_intent.succeeded",
        "pi_a",
        {"id": "evt_poison", "data": {"object": {"id": "pi_a", "amount": "lots"}}},
        event_id="evt_poison",
    )
    after_poison = events.stripe("payment_intent.succeeded", intent="pi_a", order_id="order-a")
    others = [
        events.stripe("payment_intent.succeeded", intent=f"pi_{n}", order_id=f"order-{n}")
        for n in ("b", "c")
    ]
    pipeline.send([poison, after_poison, *others])
    messages = pipeline.receive()
    assert len(messages) == 4
    ids = {json.loads(m["Body"])["event_id"]: m["MessageId"] for m in messages}
    response = pipeline.invoke(messages)
    assert failures(response) == {ids["evt_poison"], ids[after_poison.event_id]}
    applied = {k for k, v in statuses(db).items() if v == "applied"}
    assert applied == {others[0].event_id, others[1].event_id}
    poisoned = db.execute(
        "SELECT status, last_error FROM webhook_events WHERE event_id = 'evt_poison'"
    ).fetchone()
    assert poisoned is not None
    assert poisoned["status"] == "failed"
    assert "data.object.amount" in poisoned["last_error"]
    assert "EventsFailed" in metric_names(output)

    # A permanent failure comes back at once, so it reaches the DLQ after
    # maxReceiveCount receives. FIFO order holds: the event queued behind it in
    # its group is received (and skipped) with it, so it goes along, unapplied.
    pipeline.drain()
    dead = pipeline.stack.messages(pipeline.stack.dlq_url)
    dead_ids = sorted(json.loads(m["Body"])["event_id"] for m in dead)
    assert dead_ids == sorted(["evt_poison", after_poison.event_id])
    assert after_poison.event_id not in statuses(db)
    attempts = db.execute(
        "SELECT attempts FROM webhook_events WHERE event_id = 'evt_poison'"
    ).fetchone()
    assert attempts == {"attempts": 5}  # MaxReceiveCount in template.yaml


def test_orphan_does_not_block_its_group_or_others(pipeline: Pipeline, db: Connection) -> None:
    insert_order(db, "order-known", 2000)
    orphan = events.stripe("payment_intent.succeeded", intent="pi_o", order_id="order-new", at=1)
    same_group = events.stripe(
        "charge.refunded", intent="pi_o", order_id="order-new", refunded=100, at=2
    )
    other = events.stripe("payment_intent.succeeded", intent="pi_k", order_id="order-known")
    pipeline.send([orphan, same_group, other])
    pipeline.drain()
    assert pipeline.responses[0] == {"batchItemFailures": []}
    assert statuses(db) == {
        orphan.event_id: "orphaned",
        same_group.event_id: "orphaned",
        other.event_id: "applied",
    }


def test_unknown_type_and_unparseable_message(pipeline: Pipeline, db: Connection) -> None:
    unknown = events.envelope("stripe", "customer.created", "cus_1", {"id": "e1", "data": {}})
    pipeline.send([unknown])
    pipeline.stack.sqs.send_message(
        QueueUrl=pipeline.stack.queue_url,
        MessageBody='{"not": "an envelope"}',
        MessageDeduplicationId="garbage",
        MessageGroupId="garbage",
    )
    pipeline.drain()
    assert statuses(db) == {unknown.event_id: "ignored"}
    dead = pipeline.stack.messages(pipeline.stack.dlq_url)
    assert [m["Body"] for m in dead] == ['{"not": "an envelope"}']


def test_transient_failures_back_off_with_the_receive_count(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, mercadopago_api: object
) -> None:
    monkeypatch.setenv("RETRY_BASE_SECONDS", "60")
    consumer.cache_clear()
    mercadopago_api.down = True  # type: ignore[attr-defined]
    pipeline.send([events.mercadopago()])
    response = pipeline.run_once()
    assert len(failures(response)) == 1
    assert pipeline.receive() == []  # hidden for 60 s, not the queue's 180 s or 0
    assert RetryPolicy(60, 900).delay(3, transient=True) == 240
    assert RetryPolicy(60, 900).delay(9, transient=True) == 900
    assert RetryPolicy(60, 900).delay(3, transient=False) == 0


@pytest.fixture
def proxied_database(
    postgres: PostgresServer,
    database_url: str,
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[TcpProxy]:
    """The pipeline's consumer reaches PostgreSQL through a proxy the test can cut."""
    proxy = TcpProxy(postgres.address())
    proxy.start()
    url = make_conninfo(database_url, host="127.0.0.1", port=str(proxy.port))
    monkeypatch.setenv("DATABASE_URL", url)
    consumer.cache_clear()
    yield proxy
    proxy.stop()


def test_database_lost_mid_batch_loses_nothing(
    proxied_database: TcpProxy,
    pipeline: Pipeline,
    db: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = registry.get("stripe", "payment_intent.succeeded")
    assert original is not None
    seen: list[str] = []

    def cut_after_third(context: HandlerContext, event: Event) -> Outcome:
        outcome = original(context, event)
        seen.append(event.envelope.event_id)
        if len(seen) == 3:
            proxied_database.stop()  # the server vanishes before this event commits
        return outcome

    registry.register("stripe", "payment_intent.succeeded", replace=True)(cut_after_third)
    try:
        items = []
        for number in range(6):
            insert_order(db, f"order-{number}", 2000)
            items.append(events.stripe(
                "payment_intent.succeeded", intent=f"pi_{number}", order_id=f"order-{number}"
            ))  # fmt: skip
        pipeline.send(items)
        response = pipeline.run_once()
        assert len(failures(response)) == 4  # the third (cut at commit) and the three after
        done = statuses(db)
        assert len(done) == 2
        paid = db.execute("SELECT count(*) AS n FROM orders WHERE status = 'paid'").fetchone()
        assert paid == {"n": 2}  # no domain change without its ledger row

        proxied_database.start()
        pipeline.drain()
    finally:
        registry.register("stripe", "payment_intent.succeeded", replace=True)(original)
    assert set(statuses(db).values()) == {"applied"}
    assert len(statuses(db)) == 6
    assert db.execute("SELECT sum(attempts) AS n FROM webhook_events").fetchone() == {"n": 6}
    paid = db.execute("SELECT count(*) AS n FROM orders WHERE status = 'paid'").fetchone()
    assert paid == {"n": 6}
    assert pipeline.stack.messages(pipeline.stack.dlq_url) == []


def test_one_connection_serves_every_invocation(pipeline: Pipeline, db: Connection) -> None:
    for number in range(3):
        insert_order(db, f"order-{number}", 2000)
        pipeline.send([events.stripe(
            "payment_intent.succeeded", intent=f"pi_{number}", order_id=f"order-{number}"
        )])  # fmt: skip
        pipeline.drain()
    row = db.execute(
        "SELECT count(*) AS n FROM pg_stat_activity"
        " WHERE application_name = 'hookline-consumer' AND datname = current_database()"
    ).fetchone()
    assert row == {"n": 1}
    assert len(pipeline.responses) == 3


def test_database_down_at_start_fails_fast_and_recovers(
    proxied_database: TcpProxy,
    pipeline: Pipeline,
    db: Connection,
    output: pytest.CaptureFixture[str],
) -> None:
    proxied_database.stop()
    items = [
        events.stripe("payment_intent.succeeded", intent=f"pi_{n}", order_id=None) for n in range(5)
    ]
    pipeline.send(items)
    response = pipeline.run_once()
    assert len(failures(response)) == 5
    # What the reconciler's circuit breaker watches.
    assert "DatabaseFailures" in metric_names(output)
    proxied_database.start()
    pipeline.drain()
    assert set(statuses(db).values()) == {"applied"}
    assert len(statuses(db)) == 5


def test_sam_local_sqs_event_file_is_a_valid_batch(pipeline: Pipeline, db: Connection) -> None:
    event = json.loads((Path(__file__).parents[2] / "events" / "consumer-sqs.json").read_text())
    insert_order(db, "order-1001", 2000)
    response = pipeline.handler(event, FakeLambdaContext(function_name="hookline-Consumer"))
    assert response == {"batchItemFailures": []}
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}
