"""The reconciler redrives dead letters, parks what keeps failing, never parks
because of an outage, settles orphans, applies retention, and records each run.

ReconcilerFunction's real handler, on moto queues from template.yaml and a real
PostgreSQL database, with the consumer driven as Lambda drives it.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hookline.consumer.build import consumer
from hookline.envelope import Envelope
from hookline.reconcile import redrive
from hookline.reconcile.redrive import REDRIVES_ATTRIBUTE, Judgement, Redriver, Verdict

from tests.conftest import UNREACHABLE_DATABASE, point_reconciler_at
from tests.support import events
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order

ROOT = Path(__file__).resolve().parents[2]
Handler = Any


def poison() -> Envelope:
    return events.envelope(
        "stripe",
        "payment_intent.succeeded",
        "pi_poison",
        {"id": "evt_poison", "data": {"object": {"id": "pi_poison", "amount": "lots"}}},
        event_id="evt_poison",
    )


def dead_letters(pipeline: Pipeline) -> list[dict[str, Any]]:
    return pipeline.stack.messages(pipeline.stack.dlq_url)


def put_dead_letter(pipeline: Pipeline, body: str, redrives: int | None = None) -> None:
    attributes = (
        {REDRIVES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(redrives)}}
        if redrives is not None
        else {}
    )
    pipeline.stack.sqs.send_message(
        QueueUrl=pipeline.stack.dlq_url,
        MessageBody=body,
        MessageGroupId="g",
        MessageDeduplicationId=f"d{time.monotonic_ns()}",
        MessageAttributes=attributes,
    )


def record_own_failures(db: Any, item: Envelope, error: str, failures: int) -> None:
    """The ledger row the consumer writes when an event fails on its own (not an outage)."""
    db.execute(
        "INSERT INTO webhook_events (provider, event_id, event_type, object_id, received_at,"
        " status, attempts, last_error, failure_kind, permanent_failures, payload)"
        " VALUES (%s, %s, %s, %s, %s, 'failed', %s, %s, 'permanent', %s, %s::jsonb)",
        (
            item.provider,
            item.event_id,
            item.event_type,
            item.object_id,
            item.received_at,
            failures,
            error,
            failures,
            item.body,
        ),
    )


def test_a_dead_letter_that_failed_on_its_own_is_redriven_max_redrives_times_then_parked(
    pipeline: Pipeline, reconcile: Handler, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A consumer that never parks by itself: the poison reaches the DLQ on receive counts.
    monkeypatch.setenv("MAX_PERMANENT_FAILURES", "100")
    consumer.cache_clear()
    pipeline.send([poison()])
    for round_ in range(1, 4):
        pipeline.drain()
        assert len(dead_letters(pipeline)) == 1
        answer = reconcile({"action": "redrive"})
        assert (answer["redriven"], answer["parked"]) == (1, 0), round_
        assert dead_letters(pipeline) == []
    pipeline.drain()
    answer = reconcile({"action": "reconcile"})
    assert (answer["redriven"], answer["parked"]) == (0, 1)
    assert dead_letters(pipeline) == []
    parked = db.execute("SELECT * FROM parked_events").fetchall()
    assert len(parked) == 1
    assert parked[0]["event_id"] == "evt_poison"
    assert parked[0]["reason"] == "redrive_limit"
    assert "data.object.amount" in parked[0]["last_error"]
    assert parked[0]["payload"]["data"]["object"]["amount"] == "lots"
    ledger = db.execute("SELECT status, attempts FROM webhook_events").fetchone()
    # 4 trips through the queue, MaxReceiveCount (10) receives each.
    assert ledger == {"status": "parked", "attempts": 40}
    runs = db.execute(
        "SELECT status, redriven, parked FROM reconciliation_runs ORDER BY id"
    ).fetchall()
    assert [r["redriven"] for r in runs] == [1, 1, 1, 0]
    assert runs[-1] == {"status": "succeeded", "redriven": 0, "parked": 1}


def test_a_crash_between_resend_and_delete_loses_nothing(
    pipeline: Pipeline, reconcile: Handler, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert_order(db, "order-1001", 2000)
    event = events.stripe("payment_intent.succeeded", intent="pi_crash", order_id="order-1001")
    put_dead_letter(pipeline, event.to_message_body())

    class CrashAfterSend:
        """The real client, but the process dies before the DLQ delete."""

        def __init__(self, client: Any) -> None:
            self.client = client

        def __getattr__(self, name: str) -> Any:
            if name == "delete_message":
                raise SystemExit("crashed between re-send and delete")
            return getattr(self.client, name)

    monkeypatch.setattr(redrive, "HANDLING_SECONDS", 1)
    crashing = Redriver(
        CrashAfterSend(pipeline.stack.sqs),
        pipeline.stack.queue_url,
        pipeline.stack.dlq_url,
        lambda letter: Judgement(Verdict.REDRIVE),
        lambda letter, reason: True,
    )
    with pytest.raises(SystemExit):
        crashing.run()
    time.sleep(1.5)  # the DLQ shows the message again once its handling time is over
    assert reconcile({"action": "redrive"})["redriven"] == 1
    assert dead_letters(pipeline) == []
    # Re-sent twice with the same redrive deduplication id: SQS kept one.
    assert len(pipeline.stack.messages()) == 1
    pipeline.drain()
    row = db.execute("SELECT status, attempts FROM webhook_events").fetchone()
    assert row == {"status": "applied", "attempts": 1}


def test_a_database_outage_parks_nothing_and_the_run_after_it_does(
    pipeline: Pipeline, reconcile: Handler, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_dead_letter(pipeline, poison().to_message_body(), redrives=3)
    # It failed on its own on each of its 4 trips through the queue.
    record_own_failures(db, poison(), "MalformedEvent: data.object.amount is not a number", 4)
    monkeypatch.setenv("MAX_PERMANENT_FAILURES", "100")
    database_url = os.environ["DATABASE_URL"]
    point_reconciler_at(monkeypatch, UNREACHABLE_DATABASE)
    skipped = reconcile({"action": "reconcile"})
    assert (skipped["ok"], skipped["skipped"]) == (False, "database unavailable")
    assert len(dead_letters(pipeline)) == 1
    assert db.execute("SELECT count(*) AS n FROM parked_events").fetchone() == {"n": 0}

    point_reconciler_at(monkeypatch, database_url)  # the database is back
    assert reconcile({"action": "reconcile"})["parked"] == 1
    parked = db.execute(
        "SELECT provider, event_id, reason, payload, last_error FROM parked_events"
    ).fetchone()
    assert parked["event_id"] == "evt_poison"
    assert parked["reason"] == "redrive_limit"
    assert parked["payload"]["id"] == "evt_poison"
    assert parked["last_error"] == "MalformedEvent: data.object.amount is not a number"
    assert dead_letters(pipeline) == []


def test_a_message_that_is_not_an_envelope_is_parked_not_redriven(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    put_dead_letter(pipeline, '{"not": "an envelope"}')
    assert reconcile({"action": "redrive"})["parked"] == 1
    parked = db.execute("SELECT provider, reason, payload FROM parked_events").fetchone()
    assert parked == {
        "provider": "unknown",
        "reason": "malformed_message",
        "payload": {"message": '{"not": "an envelope"}'},
    }
    assert pipeline.stack.messages() == []


def test_the_scheduled_run_settles_orphans_and_records_itself(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    orphan = events.stripe("payment_intent.succeeded", intent="pi_late", order_id="order-late")
    pipeline.send([orphan])
    pipeline.drain()
    assert db.execute("SELECT status FROM webhook_events").fetchone() == {"status": "orphaned"}
    insert_order(db, "order-late", 2000)
    scheduled = json.loads((ROOT / "events" / "reconciler-schedule.json").read_text())
    answer = reconcile(scheduled)
    assert answer["ok"] is True
    assert answer["orphans_settled"] == 1
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}
    run = db.execute("SELECT * FROM reconciliation_runs").fetchone()
    assert run["status"] == "succeeded"
    assert run["orphans_settled"] == 1
    assert run["finished_at"] >= run["started_at"]


def test_retention_deletes_only_settled_rows_past_the_window(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    old = datetime.now(UTC) - timedelta(days=31)
    recent = datetime.now(UTC) - timedelta(days=29)
    rows = [
        ("old-applied", "applied", old),
        ("old-stale", "stale", old),
        ("old-ignored", "ignored", old),
        # Resolved by a human: as final as applied (its parking stays in parked_events).
        ("old-resolved", "resolved", old),
        ("old-failed", "failed", old),
        ("old-orphaned", "orphaned", old),
        ("old-parked", "parked", old),
        ("recent-applied", "applied", recent),
    ]
    for event_id, status, received in rows:
        db.execute(
            "INSERT INTO webhook_events (provider, event_id, event_type, received_at, status,"
            " payload) VALUES ('stripe', %s, 't', %s, %s, '{}')",
            (event_id, received, status),
        )
    db.execute(
        "INSERT INTO parked_events (provider, event_id, reason, payload, resolved_at, resolution)"
        " VALUES ('stripe', 'old-resolved', 'redrive_limit', '{}', %s, 'refunded by hand')",
        (old,),
    )
    assert reconcile({"action": "reconcile"})["retention_deleted"] == 4
    left = {r["event_id"] for r in db.execute("SELECT event_id FROM webhook_events")}
    assert left == {"old-failed", "old-orphaned", "old-parked", "recent-applied"}
    parking = db.execute(
        "SELECT resolution FROM parked_events WHERE event_id = 'old-resolved'"
    ).fetchone()
    assert parking == {"resolution": "refunded by hand"}  # parkings are kept


def test_status_and_unknown_actions(pipeline: Pipeline, reconcile: Handler) -> None:
    answer = reconcile({"action": "status"})
    assert answer["ok"] is True
    assert set(answer["status"]["queues"]) == {"EventsQueue", "EventsDLQ"}
    assert "ledger" in answer["status"]["database"]
    assert reconcile({"action": "explode"}) == {
        "ok": False,
        "error": "unknown action 'explode'; known: status, redrive, reconcile, events, event,"
        " replay, parked, resolve",
        "kind": "InvalidRequest",
    }
