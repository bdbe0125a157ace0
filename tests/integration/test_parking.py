"""Parking is a verdict about the event itself (issue 10, principle 2).

An event is parked only when its own attempts show it can never apply: never
because a dependency was down or slow, however long, and never a dead copy of
an event already handled. A parked event can always be replayed from what
parked_events keeps, and resolving it with a replay is all or nothing.

The real ConsumerFunction and ReconcilerFunction handlers, moto queues from
template.yaml, a real PostgreSQL database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hookline.consumer.build import consumer
from hookline.envelope import Envelope
from hookline.local.sandbox import ProviderSandbox, mercadopago_payment
from hookline.queue import EventQueue
from hookline.reconcile import actions
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from tests.support import events
from tests.support.events import poison
from tests.support.interleave import Contender, Row, interleave
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order

Handler = Any
MAX_REDRIVES = 3  # template.yaml's default, which the reconcile fixture uses


def dead_letters(pipeline: Pipeline) -> list[dict[str, Any]]:
    return pipeline.stack.messages(pipeline.stack.dlq_url)


def parked_count(db: Any) -> int:
    row = db.execute("SELECT count(*) AS n FROM parked_events").fetchone()
    return int(row["n"])


def wait_out_an_outage(pipeline: Pipeline, reconcile: Handler, db: Any, rounds: int) -> None:
    """Each round: the consumer fails the event until SQS moves it to the DLQ
    (MaxReceiveCount receives), then a reconciler run. Far more rounds than
    MAX_REDRIVES: nothing may be parked, and the event is never lost."""
    for round_ in range(rounds):
        pipeline.drain()
        assert len(dead_letters(pipeline)) == 1, round_
        answer = reconcile({"action": "reconcile"})
        assert (answer["redriven"], answer["parked"]) == (1, 0), round_
        assert parked_count(db) == 0


def test_a_provider_api_outage_for_many_redrives_parks_nothing(
    pipeline: Pipeline,
    reconcile: Handler,
    db: Any,
    mercadopago_api: ProviderSandbox,
    output: pytest.CaptureFixture[str],
) -> None:
    """Issue 10, defect 5: a Mercado Pago outage of about an hour ended in redrive_limit."""
    insert_order(db, "order-mp", 10050, "BRL")
    mercadopago_api.down = True
    item = events.mercadopago()
    pipeline.send([item])
    wait_out_an_outage(pipeline, reconcile, db, rounds=MAX_REDRIVES + 1)
    ledger = db.execute("SELECT status, failure_kind, permanent_failures FROM webhook_events")
    assert ledger.fetchone() == {
        "status": "failed",
        "failure_kind": "transient",
        "permanent_failures": 0,
    }
    # The operator is told the event is ageing (EventsWaitingAlarm).
    assert '"WaitingEventAge"' in output.readouterr().out

    mercadopago_api.down = False
    mercadopago_api.payments["1320470583"] = mercadopago_payment(
        "1320470583", "approved", "100.50", external_reference="order-mp"
    )
    pipeline.drain()
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}
    assert db.execute("SELECT status FROM webhook_events").fetchone() == {"status": "applied"}
    assert parked_count(db) == 0


def test_a_consumer_statement_timeout_for_many_redrives_parks_nothing(
    pipeline: Pipeline,
    reconcile: Handler,
    db: Any,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 10, defect 5: consumer-only database failures (the reconciler's is fine)."""
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT_MS", "100")
    consumer.cache_clear()
    insert_order(db, "order-1001", 2000)
    pipeline.send([events.stripe("payment_intent.succeeded")])
    with psycopg.connect(database_url) as holder:
        # A long transaction elsewhere holds the order: every apply times out waiting.
        holder.execute("SELECT 1 FROM orders WHERE id = 'order-1001' FOR UPDATE")
        wait_out_an_outage(pipeline, reconcile, db, rounds=MAX_REDRIVES + 1)
        holder.rollback()
    pipeline.drain()
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}
    assert db.execute("SELECT status, attempts FROM webhook_events").fetchone() == {
        "status": "applied",
        "attempts": 1,
    }


@pytest.fixture
def limited_role(database_url: str, db: Any) -> Iterator[str]:
    """A role the consumer connects as, allowed no connections (a full connection limit)."""
    role = f"hookline_limited_{time.monotonic_ns()}"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 0").format(sql.Identifier(role)))
    for grant in (
        "GRANT USAGE ON SCHEMA hookline TO {}",
        "GRANT ALL ON ALL TABLES IN SCHEMA hookline TO {}",
    ):
        db.execute(sql.SQL(grant).format(sql.Identifier(role)))
    try:
        yield role
    finally:
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_consumer_connection_limit_for_many_redrives_parks_nothing(
    pipeline: Pipeline,
    reconcile: Handler,
    db: Any,
    database_url: str,
    limited_role: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 10, defect 5: "too many connections" is the database's state, not the event's."""
    reconcile({"action": "status"})  # the reconciler is built, on the shop's own role
    assert conninfo_to_dict(database_url).get("user") != limited_role
    monkeypatch.setenv("DATABASE_URL", make_conninfo(database_url, user=limited_role))
    consumer.cache_clear()
    insert_order(db, "order-1001", 2000)
    pipeline.send([events.stripe("payment_intent.succeeded")])
    wait_out_an_outage(pipeline, reconcile, db, rounds=MAX_REDRIVES + 1)
    assert db.execute("SELECT count(*) AS n FROM webhook_events").fetchone() == {"n": 0}

    db.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1").format(sql.Identifier(limited_role)))
    pipeline.drain()
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}
    assert parked_count(db) == 0


def test_a_dead_copy_of_an_applied_event_is_dropped_not_parked(
    pipeline: Pipeline, reconcile: Handler, db: Any, output: pytest.CaptureFixture[str]
) -> None:
    """Issue 10, defect 10: parking a dead copy rewrote `applied` to `parked`."""
    insert_order(db, "order-1001", 2000)
    item = events.stripe("payment_intent.succeeded")
    pipeline.send([item])
    pipeline.drain()
    # A copy reached the DLQ anyway (a delete lost after commit), as redriven to the limit.
    put_dead_letter(pipeline, item, redrives=MAX_REDRIVES)
    answer = reconcile({"action": "reconcile"})
    assert (answer["redriven"], answer["parked"]) == (0, 0)
    assert dead_letters(pipeline) == []
    assert pipeline.stack.messages() == []
    assert db.execute("SELECT status, attempts FROM webhook_events").fetchone() == {
        "status": "applied",
        "attempts": 1,
    }
    assert parked_count(db) == 0
    assert '"DeadLettersDropped"' in output.readouterr().out


def put_dead_letter(pipeline: Pipeline, item: Envelope, redrives: int) -> None:
    pipeline.stack.sqs.send_message(
        QueueUrl=pipeline.stack.dlq_url,
        MessageBody=item.to_message_body(),
        MessageGroupId=item.group_id,
        MessageDeduplicationId=f"dead-{time.monotonic_ns()}",
        MessageAttributes={
            "hookline-redrives": {"DataType": "Number", "StringValue": str(redrives)}
        },
    )


def parked_poison(pipeline: Pipeline, db: Any) -> int:
    """A poison event, parked by the consumer after its own failures; its parked id."""
    pipeline.send([poison()])
    pipeline.drain()
    row = db.execute("SELECT id FROM parked_events WHERE resolved_at IS NULL").fetchone()
    assert row is not None
    return int(row["id"])


def test_a_parked_event_is_replayed_from_parked_events_alone(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    """Issue 10, defect 3: resolve --replay needed a ledger row, and closed the parking anyway."""
    parked_id = parked_poison(pipeline, db)
    db.execute("DELETE FROM webhook_events")  # e.g. a database restored from before it
    answer = reconcile(
        {"action": "resolve", "id": parked_id, "resolution": "handler fixed", "replay": True}
    )
    assert answer["ok"] is True, answer
    [replayed] = answer["replay"]["replayed"]
    [message] = pipeline.stack.messages()
    sent = json.loads(message["Body"])
    assert sent["event_id"] == replayed == f"evt_poison:replay:parked-{parked_id}"
    assert (sent["event_type"], sent["object_id"]) == ("payment_intent.succeeded", "pi_poison")
    assert json.loads(sent["body"]) == json.loads(poison().body)
    resolved = db.execute("SELECT resolved_at, resolution FROM parked_events").fetchone()
    assert resolved["resolution"] == "handler fixed"
    assert resolved["resolved_at"] is not None


def test_resolve_with_replay_changes_nothing_when_sqs_refuses(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    parked_id = parked_poison(pipeline, db)
    pipeline.stack.sqs.delete_queue(QueueUrl=pipeline.stack.queue_url)
    answer = reconcile(
        {"action": "resolve", "id": parked_id, "resolution": "handler fixed", "replay": True}
    )
    assert answer["ok"] is False
    assert "SQS did not accept the event" in answer["error"]
    still = db.execute("SELECT resolved_at, resolution FROM parked_events").fetchone()
    assert still == {"resolved_at": None, "resolution": None}


def test_resolve_with_replay_of_a_message_that_was_never_an_event_changes_nothing(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    pipeline.stack.sqs.send_message(
        QueueUrl=pipeline.stack.dlq_url,
        MessageBody='{"not": "an envelope"}',
        MessageGroupId="g",
        MessageDeduplicationId="garbage",
    )
    assert reconcile({"action": "redrive"})["parked"] == 1
    parked_id = db.execute("SELECT id FROM parked_events").fetchone()["id"]
    answer = reconcile({"action": "resolve", "id": parked_id, "resolution": "x", "replay": True})
    assert answer == {
        "ok": False,
        "error": f"event sqs:{answer['error'].split('sqs:')[1].split()[0]} was never an event"
        " (not an envelope): nothing to replay",
        "kind": "OperatorRefused",
    }
    assert db.execute("SELECT resolved_at FROM parked_events").fetchone() == {"resolved_at": None}
    # Without a replay it can still be closed.
    assert reconcile({"action": "resolve", "id": parked_id, "resolution": "junk"})["ok"] is True


def test_retrying_a_resolve_after_a_lost_commit_replays_once(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    """The replay is named after the parking: sent again, SQS and the ledger drop it."""
    parked_id = parked_poison(pipeline, db)
    request = {"action": "resolve", "id": parked_id, "resolution": "fixed", "replay": True}
    first = reconcile(request)
    # The commit was lost (e.g. the invocation timed out after SQS accepted).
    db.execute("UPDATE parked_events SET resolved_at = NULL, resolution = NULL")
    second = reconcile(request)
    assert first["replay"]["replayed"] == second["replay"]["replayed"]
    assert len(pipeline.stack.messages()) == 1


def test_one_own_failure_then_an_outage_is_redriven_past_max_redrives_not_parked(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    """The verdict counts the event's own failures, not the kind of the last one
    recorded: one early 404 (a payment Mercado Pago did not show yet), then trips
    through the queue the consumer could not record (a connection limit), is no
    evidence that it can never apply."""
    item = poison("evt_once")
    db.execute(
        "INSERT INTO webhook_events (provider, event_id, event_type, object_id, received_at,"
        " status, attempts, last_error, failure_kind, permanent_failures, payload)"
        " VALUES ('stripe', 'evt_once', %s, %s, now(), 'failed', 1,"
        " 'ResourceNotFound: mercadopago API has no such resource', 'permanent', 1, '{}')",
        (item.event_type, item.object_id),
    )
    put_dead_letter(pipeline, item, redrives=MAX_REDRIVES + 2)
    answer = reconcile({"action": "redrive"})
    assert (answer["redriven"], answer["parked"]) == (1, 0)
    assert parked_count(db) == 0


def test_resolve_locks_the_ledger_row_before_the_parking(
    pipeline: Pipeline, db: Any, database_url: str
) -> None:
    """The consumer parks by updating the ledger row, then inserting the parking; resolve
    takes the same two locks in the same order, so the two cannot deadlock.

    While the ledger row is held (as by a consumer between its two statements), resolve
    waits for it without having locked the parking yet: another transaction can still
    lock the parking at once."""
    parked_id = parked_poison(pipeline, db)
    queue = EventQueue(pipeline.stack.queue_url, pipeline.stack.sqs)
    request = actions.ResolveRequest.parse("resolve", {"id": "evt_poison", "resolution": "ok"})
    with (
        psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as resolving,
        psycopg.connect(database_url) as probing,
    ):

        def probe() -> None:
            # NOWAIT: fails at once (LockNotAvailable) if resolve holds the parking.
            probing.execute(
                "SELECT 1 FROM parked_events WHERE id = %s FOR UPDATE NOWAIT", (parked_id,)
            )
            probing.rollback()

        resolve, probed = interleave(
            database_url,
            [Row("webhook_events", {"provider": "stripe", "event_id": "evt_poison"})],
            [
                Contender(
                    "resolve",
                    resolving.info.backend_pid,
                    lambda: actions.resolve(resolving, queue, request),
                ),
                Contender("probe", probing.info.backend_pid, probe),
            ],
        )
    assert resolve.blocked, resolve.describe()
    assert "webhook_events" in resolve.waited_for
    assert probed.error is None, probed.describe()
    assert resolve.error is None, resolve.describe()
    assert db.execute("SELECT status FROM webhook_events").fetchone() == {"status": "resolved"}
