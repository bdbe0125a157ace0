"""ConsumerFunction end to end: moto SQS and DynamoDB from template.yaml, real PostgreSQL."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hookline.consumer.batch import RetryPolicy
from hookline.consumer.build import consumer
from hookline.database import Connection
from hookline.envelope import Envelope
from hookline.handlers import Event, HandlerContext, Outcome, registry
from hookline.local.sandbox import ProviderSandbox, mercadopago_payment
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


def metric_totals(output: pytest.CaptureFixture[str]) -> dict[str, float]:
    """Each metric's values summed over the EMF records printed (service-only records)."""
    totals: dict[str, float] = {}
    for line in output.readouterr().out.splitlines():
        if line.startswith("{") and "_aws" in line:
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                if directive["Dimensions"] != [["service"]]:
                    continue
                for metric in directive["Metrics"]:
                    values = document[metric["Name"]]
                    values = values if isinstance(values, list) else [values]
                    totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals


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


def test_a_poison_event_is_parked_by_the_consumer_and_its_group_mates_apply(
    pipeline: Pipeline, db: Connection, output: pytest.CaptureFixture[str]
) -> None:
    """Issue 10, defect 2: the event behind a poison in its group was parked untried."""
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
    # FIFO order holds: the event behind the poison in its group waits for it.
    assert failures(response) == {ids["evt_poison"], ids[after_poison.event_id]}
    applied = {k for k, v in statuses(db).items() if v == "applied"}
    assert applied == {others[0].event_id, others[1].event_id}
    poisoned = db.execute(
        "SELECT status, last_error, failure_kind FROM webhook_events WHERE event_id = 'evt_poison'"
    ).fetchone()
    assert poisoned is not None
    assert (poisoned["status"], poisoned["failure_kind"]) == ("failed", "permanent")
    assert "data.object.amount" in poisoned["last_error"]
    assert "EventsFailed" in metric_names(output)

    # Its own failures come back at once; at the third (MAX_PERMANENT_FAILURES) the
    # consumer parks it, and the event behind it applies: never near the DLQ.
    batches = pipeline.drain()
    assert batches == 2
    assert statuses(db) == {
        "evt_poison": "parked",
        after_poison.event_id: "applied",
        others[0].event_id: "applied",
        others[1].event_id: "applied",
    }
    assert db.execute("SELECT status FROM orders WHERE id = 'order-a'").fetchone() == {
        "status": "paid"
    }
    parked = db.execute(
        "SELECT event_id, reason, last_error, event_type, object_id FROM parked_events"
    ).fetchall()
    assert len(parked) == 1
    assert parked[0]["reason"] == "permanent_failure"
    assert "data.object.amount" in parked[0]["last_error"]
    assert (parked[0]["event_type"], parked[0]["object_id"]) == ("payment_intent.succeeded", "pi_a")
    attempts = db.execute(
        "SELECT attempts, permanent_failures FROM webhook_events WHERE event_id = 'evt_poison'"
    ).fetchone()
    assert attempts == {"attempts": 3, "permanent_failures": 3}
    assert "EventsParked" in metric_names(output)
    assert pipeline.stack.messages(pipeline.stack.dlq_url) == []


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
    assert RetryPolicy(60, 900, 10).delay(2, transient=False) == 20
    assert RetryPolicy(60, 900, 0).delay(3, transient=False) == 0


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
    context = FakeLambdaContext(function_name="hookline-Consumer", timeout_seconds=30.0)
    response = pipeline.handler(event, context)
    assert response == {"batchItemFailures": []}
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}


def test_an_idempotency_store_failing_after_the_commit_neither_reapplies_nor_hides_a_mismatch(
    pipeline: Pipeline, db: Connection, output: pytest.CaptureFixture[str]
) -> None:
    """Issue 10, defect 9: the fallback re-ran the event, found it done, and reported a
    duplicate, so the amount mismatch it had just made went uncounted."""
    insert_order(db, "order-1001", 2000)
    original = registry.get("stripe", "payment_intent.succeeded")
    assert original is not None
    table = pipeline.stack.idempotency_table

    def store_lost_after_apply(context: HandlerContext, event: Event) -> Outcome:
        outcome = original(context, event)
        # DynamoDB goes away between the apply and saving its record.
        pipeline.stack.dynamodb.delete_table(TableName=table)
        return outcome

    registry.register("stripe", "payment_intent.succeeded", replace=True)(store_lost_after_apply)
    try:
        pipeline.send([events.stripe("payment_intent.succeeded", amount=1999)])
        output.readouterr()
        assert pipeline.run_once() == {"batchItemFailures": []}
    finally:
        registry.register("stripe", "payment_intent.succeeded", replace=True)(original)
    names = metric_names(output)
    assert "IdempotencyUnavailable" in names
    assert "AmountMismatches" in names
    assert "EventsApplied" in names
    assert "EventsDuplicate" not in names
    assert db.execute("SELECT status, attempts FROM webhook_events").fetchone() == {
        "status": "applied",
        "attempts": 1,
    }


def test_a_slow_provider_api_hands_back_what_cannot_start_without_penalty(
    pipeline: Pipeline,
    db: Connection,
    mercadopago_api: ProviderSandbox,
    output: pytest.CaptureFixture[str],
) -> None:
    """Issue 10, defect 12: slow Mercado Pago fetches timed out whole batches.

    Each fetch takes 2.5 s; the function has 13.5 s (2 kept to answer) and an
    event starts only with 10 s left: one event fits, the rest are handed back
    at once, not tried and not failed, and the invocation ends in time."""
    mercadopago_api.delay_seconds = 2.5
    payments = [str(1_320_470_580 + n) for n in range(3)]
    for payment_id in payments:
        insert_order(db, f"order-{payment_id}", 500, "BRL")
        mercadopago_api.payments[payment_id] = mercadopago_payment(
            payment_id, "approved", "5.00", external_reference=f"order-{payment_id}"
        )
    pipeline.send([events.mercadopago(payment_id) for payment_id in payments])
    messages = pipeline.receive()
    assert len(messages) == 3
    output.readouterr()
    started = time.monotonic()
    response = pipeline.invoke(messages, timeout_seconds=13.5)
    assert time.monotonic() - started < 13.5  # it answered before its timeout
    handed_back = failures(response)
    assert len(handed_back) == 2
    totals = metric_totals(output)
    assert totals["EventsHandedBack"] == 2
    assert "EventsFailed" not in totals
    assert len(statuses(db)) == 1  # nothing recorded for what was handed back
    # They come back at once (visibility 0), each to an invocation with time for it.
    for _ in range(2):
        again = pipeline.receive()
        assert {m["MessageId"] for m in again} <= handed_back
        pipeline.invoke(again, timeout_seconds=13.5)
    assert set(statuses(db).values()) == {"applied"}
    rows = db.execute(
        "SELECT attempts, permanent_failures, failure_kind FROM webhook_events"
    ).fetchall()
    assert rows == [{"attempts": 1, "permanent_failures": 0, "failure_kind": None}] * 3


def test_a_lock_wait_past_the_deadline_is_cancelled_and_handed_back(
    pipeline: Pipeline,
    db: Connection,
    database_url: str,
    output: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A transaction elsewhere holds the order longer than the invocation has left
    (and than nothing else would stop: a long statement_timeout): the statement
    waiting for it is cancelled at the deadline, the event handed back, and the
    invocation answers before its timeout."""
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT_MS", "600000")
    consumer.cache_clear()
    insert_order(db, "order-1001", 2000)
    pipeline.send([events.stripe("payment_intent.succeeded")])
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT 1 FROM orders WHERE id = 'order-1001' FOR UPDATE")
        started = time.monotonic()
        response = pipeline.invoke(pipeline.receive(), timeout_seconds=12.5)
        elapsed = time.monotonic() - started
        holder.rollback()
    assert elapsed < 12.5
    assert len(failures(response)) == 1
    totals = metric_totals(output)
    assert totals["EventsHandedBack"] == 1
    assert "EventsFailed" not in totals
    assert statuses(db) == {}
    pipeline.drain()
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}
