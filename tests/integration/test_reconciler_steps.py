"""One bad item never stops the rest (issue 10, principle 3).

Each reconciler step with one broken item among good ones: the good ones are
handled, the broken one is set aside with its reason, the run goes on and
every other step still runs. Broken items are real ones where PostgreSQL and
SQS allow it (a trigger of the shop's, a foreign key of the shop's, a hostile
payload); a re-send SQS refuses is injected at the client.

The real ReconcilerFunction handler, moto queues from template.yaml, real PostgreSQL.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hookline.envelope import Envelope
from hookline.reconcile.build import reconciler

from tests.support import events
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order

Handler = Any


def dead_letter(pipeline: Pipeline, body: str, group: str) -> None:
    pipeline.stack.sqs.send_message(
        QueueUrl=pipeline.stack.dlq_url,
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=f"d{time.monotonic_ns()}",
    )


def orphan(pipeline: Pipeline, intent: str, order_id: str, amount: int = 2000) -> Envelope:
    item = events.stripe(
        "payment_intent.succeeded", intent=intent, order_id=order_id, amount=amount
    )
    pipeline.send([item])
    pipeline.drain()
    return item


def metrics_out(output: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in output.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
    ]


def test_a_nul_payload_in_the_dlq_neither_halts_the_run_nor_stays_unapplied(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    """Issue 10, defect 4: jsonb refused \\u0000; parking failed; every run after it failed."""
    insert_order(db, "order-nul", 2000)
    insert_order(db, "order-late", 2000)
    item = events.stripe("payment_intent.succeeded", intent="pi_nul", order_id="order-nul")
    hostile = item.model_copy(
        update={
            "body": item.body.replace('"metadata": {', '"description": "a\\u0000b", "metadata": {')
        }
    )
    dead_letter(pipeline, hostile.to_message_body(), "g-nul")
    dead_letter(pipeline, '{"not": "an envelope", "junk": "\\u0000"}', "g-junk")
    late = orphan(pipeline, "pi_late", "order-late-2")
    insert_order(db, "order-late-2", 2000)

    answer = reconcile({"action": "reconcile"})
    assert answer["ok"] is True, answer
    assert (answer["redriven"], answer["parked"], answer["orphans_settled"]) == (1, 1, 1)
    pipeline.drain()
    assert db.execute("SELECT status FROM orders WHERE id = 'order-nul'").fetchone() == {
        "status": "paid"
    }
    statuses = {r["event_id"]: r["status"] for r in db.execute("SELECT * FROM webhook_events")}
    assert statuses == {hostile.event_id: "applied", late.event_id: "applied"}
    junk = db.execute("SELECT reason, payload FROM parked_events").fetchone()
    assert junk["reason"] == "malformed_message"
    # Kept as SQS held it: the message text, escapes and all.
    assert junk["payload"]["message"] == '{"not": "an envelope", "junk": "\\u0000"}'
    # The next run is as healthy as this one.
    assert reconcile({"action": "reconcile"})["ok"] is True


def test_one_dead_letter_sqs_refuses_to_resend_stays_and_the_others_are_redriven(
    pipeline: Pipeline, reconcile: Handler, db: Any, output: pytest.CaptureFixture[str]
) -> None:
    good = [events.stripe("payment_intent.succeeded", intent=f"pi_{n}") for n in range(3)]
    stuck = events.stripe("payment_intent.succeeded", intent="pi_stuck")
    for item in [good[0], stuck, *good[1:]]:
        dead_letter(pipeline, item.to_message_body(), item.group_id)
    reconcile({"action": "status"})  # built; now its SQS client refuses one re-send
    sqs = reconciler().queue._client  # type: ignore[union-attr]
    real_send = sqs.send_message

    def send_message(**kwargs: Any) -> Any:
        if json.loads(kwargs["MessageBody"])["event_id"] == stuck.event_id:
            raise ClientError({"Error": {"Code": "InternalError"}}, "SendMessage")
        return real_send(**kwargs)

    sqs.send_message = send_message  # type: ignore[method-assign]
    answer = reconcile({"action": "reconcile"})
    assert answer["ok"] is True  # a letter left for the next run is not a failed step
    assert answer["redriven"] == 3
    queued = {json.loads(m["Body"])["event_id"] for m in pipeline.stack.messages()}
    assert queued == {g.event_id for g in good}
    assert '"DeadLettersFailed"' in json.dumps(metrics_out(output))
    # Still in the DLQ (hidden while its handling time runs), never deleted unsent.
    attributes = pipeline.stack.sqs.get_queue_attributes(
        QueueUrl=pipeline.stack.dlq_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_one_order_that_cannot_be_settled_does_not_stop_the_others(
    pipeline: Pipeline, reconcile: Handler, db: Any, output: pytest.CaptureFixture[str]
) -> None:
    for n in range(3):
        orphan(pipeline, f"pi_{n}", f"order-{n}")
    # The shop's own trigger refuses any change to one order.
    db.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN RAISE EXCEPTION 'order-1 is frozen by the shop'; END$$"
    )
    db.execute(
        "CREATE TRIGGER frozen BEFORE UPDATE ON orders FOR EACH ROW"
        " WHEN (OLD.id = 'order-1') EXECUTE FUNCTION refuse()"
    )
    for n in range(3):
        insert_order(db, f"order-{n}", 2000)
    answer = reconcile({"action": "reconcile"})
    assert answer["ok"] is True
    assert answer["orphans_settled"] == 2
    orders = {r["id"]: r["status"] for r in db.execute("SELECT id, status FROM orders")}
    assert orders == {"order-0": "paid", "order-1": "pending", "order-2": "paid"}
    assert '"OrphansFailed"' in json.dumps(metrics_out(output))


def test_one_ledger_row_retention_cannot_delete_does_not_stop_the_others(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    old = datetime.now(UTC) - timedelta(days=31)
    for n in range(5):
        db.execute(
            "INSERT INTO webhook_events (provider, event_id, event_type, received_at, status,"
            " payload) VALUES ('stripe', %s, 't', %s, 'applied', '{}')",
            (f"old-{n}", old),
        )
    # The shop's own table still points at one ledger row.
    db.execute(
        "CREATE TABLE shop_audit (provider text, event_id text,"
        " FOREIGN KEY (provider, event_id) REFERENCES webhook_events)"
    )
    db.execute("INSERT INTO shop_audit VALUES ('stripe', 'old-3')")
    answer = reconcile({"action": "reconcile"})
    assert answer["ok"] is True
    assert answer["retention_deleted"] == 4
    left = [r["event_id"] for r in db.execute("SELECT event_id FROM webhook_events")]
    assert left == ["old-3"]


def test_a_failing_step_is_recorded_and_every_other_step_still_runs(
    pipeline: Pipeline, reconcile: Handler, db: Any, output: pytest.CaptureFixture[str]
) -> None:
    orphan(pipeline, "pi_o", "order-o")
    insert_order(db, "order-o", 2000)
    old = datetime.now(UTC) - timedelta(days=31)
    db.execute(
        "INSERT INTO webhook_events (provider, event_id, event_type, received_at, status,"
        " payload) VALUES ('stripe', 'old', 't', %s, 'applied', '{}')",
        (old,),
    )
    pipeline.stack.sqs.delete_queue(QueueUrl=pipeline.stack.dlq_url)  # redrive cannot run
    answer = reconcile({"action": "reconcile"})
    assert answer["ok"] is False
    assert list(answer["failed_steps"]) == ["redrive"]
    assert (answer["orphans_settled"], answer["retention_deleted"]) == (1, 1)
    run = db.execute("SELECT status, error, orphans_settled FROM reconciliation_runs").fetchone()
    assert run["status"] == "failed"
    assert run["error"].startswith("redrive: QueueUnavailable")
    assert run["orphans_settled"] == 1
    step_failures = [m for m in metrics_out(output) if "ReconcileStepFailed" in m]
    assert any(m.get("step") == "redrive" for m in step_failures)


def test_an_orphan_whose_order_exists_is_settled_whatever_waits_before_it(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    """Issue 10, defect 6: settling looked only at the 500 oldest orphans."""
    abandoned_at = datetime.now(UTC) - timedelta(hours=2)
    with db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO webhook_events (provider, event_id, event_type, occurred_at,"
            " received_at, status, order_id, payload)"
            " VALUES ('stripe', %s, 'payment_intent.succeeded', %s, %s, 'orphaned', %s, '{}')",
            [(f"abandoned-{n}", abandoned_at, abandoned_at, f"cart-{n}") for n in range(600)],
        )
    late = orphan(pipeline, "pi_late", "order-late")
    insert_order(db, "order-late", 2000)
    answer = reconcile({"action": "reconcile"})
    assert answer["orphans_settled"] == 1
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}
    ledger = db.execute(
        "SELECT status FROM webhook_events WHERE event_id = %s", (late.event_id,)
    ).fetchone()
    assert ledger == {"status": "applied"}


def test_a_mismatch_found_while_settling_an_orphan_is_counted(
    pipeline: Pipeline, reconcile: Handler, db: Any, output: pytest.CaptureFixture[str]
) -> None:
    """Issue 10, defect 9: the alarm missed mismatches found by the reconciler."""
    orphan(pipeline, "pi_short", "order-short", amount=1999)
    insert_order(db, "order-short", 2000)
    output.readouterr()
    assert reconcile({"action": "reconcile"})["orphans_settled"] == 1
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "amount_mismatch"}
    counted = [m for m in metrics_out(output) if m.get("AmountMismatches")]
    assert counted, "AmountMismatches was not emitted"
    # Emitted with only the service dimension, which is what the alarm watches.
    assert counted[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_a_letter_whose_park_kills_the_connection_costs_only_itself(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    """The database session dies while one letter is parked (here: the shop's trigger
    terminates it). The other letters, the later steps and the run's own record all
    go on, on a new connection."""
    doomed = events.stripe("payment_intent.succeeded", intent="pi_doomed")
    fine = events.stripe("payment_intent.succeeded", intent="pi_fine", order_id="order-fine")
    insert_order(db, "order-fine", 2000)
    db.execute(
        "INSERT INTO webhook_events (provider, event_id, event_type, object_id, received_at,"
        " status, attempts, failure_kind, permanent_failures, payload)"
        " VALUES ('stripe', %s, %s, %s, now(), 'failed', 3, 'permanent', 3, '{}')",
        (doomed.event_id, doomed.event_type, doomed.object_id),
    )
    db.execute(
        "CREATE FUNCTION kill_session() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END$$"
    )
    db.execute(
        "CREATE TRIGGER kill BEFORE INSERT ON parked_events FOR EACH ROW"
        " EXECUTE FUNCTION kill_session()"
    )
    dead_letter(pipeline, doomed.to_message_body(), doomed.group_id)
    dead_letter(pipeline, fine.to_message_body(), fine.group_id)
    late = orphan(pipeline, "pi_late", "order-late")
    insert_order(db, "order-late", 2000)

    answer = reconcile({"action": "reconcile"})
    assert answer["redriven"] == 1
    assert answer["orphans_settled"] == 1
    run = db.execute("SELECT status, orphans_settled FROM reconciliation_runs").fetchone()
    assert run == {"status": "succeeded", "orphans_settled": 1}
    assert db.execute(
        "SELECT status FROM webhook_events WHERE event_id = %s", (late.event_id,)
    ).fetchone() == {"status": "applied"}
    pipeline.drain()
    assert db.execute("SELECT status FROM orders WHERE id = 'order-fine'").fetchone() == {
        "status": "paid"
    }
