"""Operator actions through ReconcilerFunction: replay (one event, a range) and parked
events (list, show, resolve with or without a replay)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from hookline.deadline import Deadline
from hookline.envelope import RECOVERED_HEADER, REPLAY_OF_HEADER, Envelope
from hookline.errors import InvalidRequest, QueueUnavailable
from hookline.queue import EventQueue
from hookline.reconcile import actions
from hookline.reconcile.build import reconciler
from hookline.reconcile.reconciler import FINISH_RESERVE_SECONDS

from tests.support import events
from tests.support.lambda_context import FakeLambdaContext
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order

Handler = Any


@pytest.fixture
def database_url(emptied_database_url: str) -> str:
    """This module's tests write rows only: one database, emptied before each test."""
    return emptied_database_url


def paid(pipeline: Pipeline, db: Any, intent: str) -> Envelope:
    """A payment applied to order-1001."""
    insert_order(db, "order-1001", 2000)
    event = events.stripe("payment_intent.succeeded", intent=intent, order_id="order-1001")
    pipeline.send([event])
    pipeline.drain()
    return event


def lose_the_effect(db: Any) -> None:
    """A database restore from before the payment: the ledger row survived, the effect not."""
    db.execute("DELETE FROM payments")
    db.execute("UPDATE orders SET status = 'pending', paid_amount = 0")


def ledger(db: Any) -> dict[str, str]:
    return {
        r["event_id"]: r["status"]
        for r in db.execute("SELECT event_id, status FROM webhook_events")
    }


def test_replaying_an_applied_event_goes_through_the_apply_path_and_changes_nothing(
    pipeline: Pipeline, reconcile: Handler, db: Any, output: pytest.CaptureFixture[str]
) -> None:
    payment = paid(pipeline, db, "pi_r1")
    output.readouterr()

    answer = reconcile({"action": "replay", "event_id": payment.event_id})
    assert answer["ok"] is True
    assert '"EventsReplayed":[1.0]' in output.readouterr().out
    (replay_id,) = answer["replayed"]
    assert replay_id == f"{payment.event_id}:replay:{answer['nonce']}"
    (message,) = pipeline.stack.messages()
    assert REPLAY_OF_HEADER in message["Body"]
    pipeline.drain()
    # A new ledger row; the rules are idempotent, so nothing is counted twice.
    assert ledger(db) == {payment.event_id: "applied", replay_id: "applied"}
    assert db.execute("SELECT status, amount FROM payments").fetchone() == {
        "status": "succeeded",
        "amount": 2000,
    }
    assert db.execute("SELECT status, paid_amount FROM orders").fetchone() == {
        "status": "paid",
        "paid_amount": 2000,
    }
    # A plain duplicate is still a no-op.
    pipeline.send([payment])
    pipeline.drain()
    row = db.execute(
        "SELECT attempts FROM webhook_events WHERE event_id = %s", (payment.event_id,)
    ).fetchone()
    assert row == {"attempts": 1}


def test_a_replay_restores_an_effect_that_was_lost(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    payment = paid(pipeline, db, "pi_r2")
    lose_the_effect(db)
    reconcile({"action": "replay", "event_id": payment.event_id, "provider": "stripe"})
    pipeline.drain()
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}


def test_a_range_replay_selects_by_provider_type_and_time(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    insert_order(db, "order-1001", 2000)
    first = events.stripe("payment_intent.created", intent="pi_r3", order_id="order-1001", at=0)
    second = events.stripe("payment_intent.succeeded", intent="pi_r3", order_id="order-1001", at=60)
    late = events.stripe(
        "charge.refunded", intent="pi_r3", order_id="order-1001", refunded=500, at=7200
    )
    pipeline.send([first, second, late])
    pipeline.drain()
    since = events.T0.isoformat()
    until = (events.T0 + timedelta(hours=1)).isoformat()
    answer = reconcile({"action": "replay", "provider": "stripe", "since": since, "until": until})
    assert sorted(e.split(":replay:")[0] for e in answer["replayed"]) == sorted(
        [first.event_id, second.event_id]
    )
    typed = reconcile({"action": "replay", "provider": "stripe", "type": "charge.refunded"})
    assert [e.split(":replay:")[0] for e in typed["replayed"]] == [late.event_id]
    assert reconcile({"action": "replay"}) == {
        "ok": False,
        "error": "replay: give event_id, or provider for a range (with type, since, until)",
        "kind": "InvalidRequest",
    }
    assert reconcile({"action": "replay", "event_id": "evt_nope"}) == {
        "ok": False,
        "error": "no ledger row for event evt_nope",
        "kind": "NotFound",
    }


def test_parked_events_are_listed_shown_and_resolved(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    payment = paid(pipeline, db, "pi_p")
    lose_the_effect(db)
    db.execute(
        "INSERT INTO parked_events (provider, event_id, reason, last_error, payload)"
        " SELECT provider, event_id, 'redrive_limit', 'boom', payload FROM webhook_events"
    )
    (listed,) = reconcile({"action": "parked"})["parked"]
    assert (listed["event_id"], listed["reason"], listed["last_error"]) == (
        payment.event_id,
        "redrive_limit",
        "boom",
    )
    shown = reconcile({"action": "parked", "id": listed["id"]})["parked"]
    assert shown["payload"]["id"] == payment.event_id
    assert reconcile({"action": "resolve", "id": listed["id"]}) == {
        "ok": False,
        "error": "resolve: resolution is required (a note saying how it was resolved)",
        "kind": "InvalidRequest",
    }
    resolved = reconcile(
        {"action": "resolve", "id": listed["id"], "resolution": "fixed the order", "replay": True}
    )
    assert resolved["ok"] is True, resolved
    assert len(resolved["replay"]["replayed"]) == 1
    pipeline.drain()
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}
    assert reconcile({"action": "parked"})["parked"] == []
    again = reconcile({"action": "resolve", "id": listed["id"], "resolution": "again"})
    assert again["kind"] == "OperatorRefused"
    assert again["error"].startswith(f"parked event #{listed['id']} (stripe {payment.event_id})")
    assert again["error"].endswith(", by note 'fixed the order'")


def test_a_replay_of_a_recovered_event_is_not_counted_as_recovered_again(
    pipeline: Pipeline, reconcile: Handler, db: Any, output: pytest.CaptureFixture[str]
) -> None:
    insert_order(db, "order-1001", 2000)
    event = events.stripe("payment_intent.succeeded", order_id="order-1001")
    recovered = event.model_copy(update={"headers": {RECOVERED_HEADER: "true"}})
    pipeline.send([recovered])
    pipeline.drain()
    assert '"EventsRecovered"' in output.readouterr().out  # its webhook never came
    answer = reconcile({"action": "replay", "event_id": event.event_id})
    (message,) = pipeline.stack.messages()
    assert RECOVERED_HEADER not in json.loads(message["Body"])["headers"]
    pipeline.drain()
    assert '"EventsRecovered"' not in output.readouterr().out
    assert ledger(db)[answer["replayed"][0]] == "applied"


def test_an_event_whose_replay_id_would_be_too_long_is_replayed_under_a_digest(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    insert_order(db, "order-1001", 2000)
    long_id = "evt_" + "9" * 500
    pipeline.send([events.stripe("payment_intent.succeeded", event_id=long_id)])
    pipeline.drain()
    answer = reconcile({"action": "replay", "event_id": long_id})
    assert answer["ok"] is True, answer
    (replay_id,) = answer["replayed"]
    assert replay_id.startswith("sha256-")
    assert len(replay_id) <= 512
    (message,) = pipeline.stack.messages()
    assert json.loads(message["Body"])["headers"][REPLAY_OF_HEADER] == long_id


def three_payments(pipeline: Pipeline, db: Any) -> list[Envelope]:
    """Three applied events, a minute apart (oldest first)."""
    insert_order(db, "order-1001", 2000)
    sent = [
        events.stripe("payment_intent.processing", intent="pi_d", order_id="order-1001", at=0),
        events.stripe("payment_intent.succeeded", intent="pi_d", order_id="order-1001", at=60),
        events.stripe("charge.refunded", intent="pi_d", refunded=500, at=120),
    ]
    pipeline.send(sent)
    pipeline.drain()
    return sent


class SlowQueue:
    """The stack's queue, where each send takes a second of `clock`."""

    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def send(self, envelope: Envelope) -> str:
        self.now += 1.0
        return self.queue.send(envelope)


def replayed_originals(answer: dict[str, Any]) -> list[str]:
    return [replay_id.split(":replay:")[0] for replay_id in answer["replayed"]]


def test_a_range_replay_stops_before_the_deadline_and_says_what_it_sent(
    pipeline: Pipeline, db: Any
) -> None:
    first, second, third = three_payments(pipeline, db)
    slow = SlowQueue(EventQueue(pipeline.stack.queue_url, pipeline.stack.sqs))
    # Time for two sends, not a third.
    deadline = Deadline(actions.REPLAY_SEND_SECONDS + 1.5, slow.clock)
    request = actions.ReplayRequest.parse("replay", {"provider": "stripe"})
    answer = actions.replay(db, slow, request, deadline)  # type: ignore[arg-type]
    assert answer.keys() == {
        "ok",
        "nonce",
        "replayed",
        "more",
        "remaining",
        "resume_since",
        "resume_after",
    }
    assert (answer["ok"], answer["more"], answer["remaining"]) == (True, True, 1)
    assert replayed_originals(answer) == [first.event_id, second.event_id]
    assert len(pipeline.stack.messages()) == 2  # exactly what it says it sent
    # Where to go on: after the last one sent.
    assert datetime.fromisoformat(answer["resume_since"]) == second.occurred_at
    assert answer["resume_after"] == second.event_id
    # Going on from there sends the rest, and says it is complete.
    rest = actions.ReplayRequest.parse(
        "replay",
        {"provider": "stripe", "since": answer["resume_since"], "after": answer["resume_after"]},
    )
    done = actions.replay(db, slow, rest, Deadline.never())  # type: ignore[arg-type]
    assert done.keys() == {"ok", "nonce", "replayed", "more"}
    assert (replayed_originals(done), done["more"]) == ([third.event_id], False)
    assert done["nonce"] != answer["nonce"]  # every request replays anew


def test_a_range_cut_short_among_events_of_one_moment_resumes_without_repeating(
    pipeline: Pipeline, db: Any
) -> None:
    """Stripe's times are whole seconds: many events can share one. Resuming from a
    time alone would send the same first ones again, forever, when the invocation
    has room for fewer than share it."""
    same_moment = [
        events.stripe("payment_intent.succeeded", intent=f"pi_m{n}", order_id="order-1001", at=0)
        for n in range(5)
    ]
    pipeline.send(same_moment)
    pipeline.drain()
    slow = SlowQueue(EventQueue(pipeline.stack.queue_url, pipeline.stack.sqs))
    request: dict[str, Any] = {"provider": "stripe"}
    sent: list[str] = []
    for _ in range(3):
        # Time for two sends each.
        deadline = Deadline(slow.now + actions.REPLAY_SEND_SECONDS + 1.5, slow.clock)
        parsed = actions.ReplayRequest.parse("replay", request)
        answer = actions.replay(db, slow, parsed, deadline)  # type: ignore[arg-type]
        sent += replayed_originals(answer)
        if not answer["more"]:
            break
        request = {
            "provider": "stripe",
            "since": answer["resume_since"],
            "after": answer["resume_after"],
        }
    assert sorted(sent) == sorted(event.event_id for event in same_moment)
    assert len(pipeline.stack.messages()) == 5


def test_after_goes_with_since_and_not_with_one_event() -> None:
    with pytest.raises(InvalidRequest, match="give since"):
        actions.ReplayRequest.parse("replay", {"provider": "stripe", "after": "evt_1"})
    with pytest.raises(InvalidRequest, match="drop type, since, until and after"):
        actions.ReplayRequest.parse("replay", {"event_id": "evt_1", "after": "evt_0"})


def test_a_replay_with_no_time_left_sends_nothing(
    pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    three_payments(pipeline, db)
    reconcile({"action": "status"})  # builds the reconciler
    short = FakeLambdaContext(
        function_name="hookline-ReconcilerFunction",
        timeout_seconds=FINISH_RESERVE_SECONDS + actions.REPLAY_SEND_SECONDS - 1,
    )
    answer = reconciler().handle({"action": "replay", "provider": "stripe"}, short)
    assert (answer["ok"], answer["replayed"], answer["more"], answer["remaining"]) == (
        True,
        [],
        True,
        3,
    )
    assert pipeline.stack.messages() == []


def test_a_send_that_fails_partway_answers_what_was_sent(
    pipeline: Pipeline, reconcile: Handler, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _, third = three_payments(pipeline, db)
    reconcile({"action": "status"})  # builds the reconciler
    queue = reconciler().queue
    assert queue is not None
    sent: list[str] = []
    real_send = queue.send

    def fails_second(envelope: Envelope) -> str:
        if len(sent) == 1:
            raise QueueUnavailable("SQS did not accept the event: EndpointConnectionError")
        sent.append(envelope.event_id)
        return real_send(envelope)

    monkeypatch.setattr(queue, "send", fails_second)
    answer = reconcile({"action": "replay", "provider": "stripe"})
    assert answer == {
        "ok": False,
        "error": "SQS did not accept the event: EndpointConnectionError",
        "kind": "QueueUnavailable",
        "nonce": answer["nonce"],
        "replayed": sent,
        "remaining": 2,
        "resume_since": answer["resume_since"],
        "resume_after": first.event_id,
    }
    assert replayed_originals(answer) == [first.event_id]
    assert len(pipeline.stack.messages()) == 1
    # A single event's replay that fails says it sent nothing.
    single = reconcile({"action": "replay", "event_id": third.event_id})
    assert (single["ok"], single["kind"], single["replayed"], single["remaining"]) == (
        False,
        "QueueUnavailable",
        [],
        1,
    )
    assert "resume_since" not in single
