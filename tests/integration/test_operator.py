"""Operator actions through ReconcilerFunction: replay (one event, a range) and parked
events (list, show, resolve with or without a replay)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hookline.reconcile.build import reconciler
from hookline.reconcile.operator import REPLAY_OF_HEADER

from tests.support import events
from tests.support.lambda_context import FakeLambdaContext
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order
from tests.support.stack import load_function

Handler = Any


@pytest.fixture
def operate(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[Handler]:
    for name, value in pipeline.stack.reconciler_environment.items():
        if name != "DATABASE_URL":
            monkeypatch.setenv(name, value)
    reconciler.cache_clear()
    app = load_function("reconciler")

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = app.lambda_handler(event, FakeLambdaContext())
        return answer

    yield invoke
    reconciler.cache_clear()


def ledger(db: Any) -> dict[str, str]:
    return {
        r["event_id"]: r["status"]
        for r in db.execute("SELECT event_id, status FROM webhook_events")
    }


def test_replaying_an_applied_event_goes_through_the_apply_path_and_changes_nothing(
    pipeline: Pipeline, operate: Handler, db: Any
) -> None:
    insert_order(db, "order-1001", 2000)
    paid = events.stripe("payment_intent.succeeded", intent="pi_r1", order_id="order-1001")
    pipeline.send([paid])
    pipeline.drain()

    answer = operate({"action": "replay", "event_id": paid.event_id})
    assert answer["ok"] is True
    (replay_id,) = answer["replayed"]
    assert replay_id == f"{paid.event_id}:replay:{answer['nonce']}"
    (message,) = pipeline.stack.messages()
    assert REPLAY_OF_HEADER in message["Body"]
    pipeline.drain()
    # A new ledger row; the rules are idempotent, so nothing is counted twice.
    assert ledger(db) == {paid.event_id: "applied", replay_id: "applied"}
    assert db.execute("SELECT status, amount FROM payments").fetchone() == {
        "status": "succeeded",
        "amount": 2000,
    }
    assert db.execute("SELECT status, paid_amount FROM orders").fetchone() == {
        "status": "paid",
        "paid_amount": 2000,
    }
    # A plain duplicate is still a no-op.
    pipeline.send([paid])
    pipeline.drain()
    row = db.execute(
        "SELECT attempts FROM webhook_events WHERE event_id = %s", (paid.event_id,)
    ).fetchone()
    assert row == {"attempts": 1}


def test_a_replay_restores_an_effect_that_was_lost(
    pipeline: Pipeline, operate: Handler, db: Any
) -> None:
    insert_order(db, "order-1001", 2000)
    paid = events.stripe("payment_intent.succeeded", intent="pi_r2", order_id="order-1001")
    pipeline.send([paid])
    pipeline.drain()
    # A database restore from before the payment: the ledger row survived, the effect did not.
    db.execute("DELETE FROM payments")
    db.execute("UPDATE orders SET status = 'pending', paid_amount = 0")
    operate({"action": "replay", "event_id": paid.event_id, "provider": "stripe"})
    pipeline.drain()
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}


def test_a_range_replay_selects_by_provider_type_and_time(
    pipeline: Pipeline, operate: Handler, db: Any
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
    until = (events.T0.replace(hour=events.T0.hour + 1)).isoformat()
    answer = operate({"action": "replay", "provider": "stripe", "since": since, "until": until})
    assert sorted(e.split(":replay:")[0] for e in answer["replayed"]) == sorted(
        [first.event_id, second.event_id]
    )
    typed = operate({"action": "replay", "provider": "stripe", "type": "charge.refunded"})
    assert [e.split(":replay:")[0] for e in typed["replayed"]] == [late.event_id]
    assert operate({"action": "replay"}) == {
        "ok": False,
        "error": "a range replay needs provider (and type, since, until as wanted)",
    }
    assert operate({"action": "replay", "event_id": "evt_nope"})["error"] == (
        "no ledger row for event evt_nope"
    )


def test_parked_events_are_listed_shown_and_resolved(
    pipeline: Pipeline, operate: Handler, db: Any
) -> None:
    insert_order(db, "order-1001", 2000)
    paid = events.stripe("payment_intent.succeeded", intent="pi_p", order_id="order-1001")
    pipeline.send([paid])
    pipeline.drain()
    db.execute("DELETE FROM payments")
    db.execute("UPDATE orders SET status = 'pending', paid_amount = 0")
    db.execute(
        "INSERT INTO parked_events (provider, event_id, reason, last_error, payload)"
        " SELECT provider, event_id, 'redrive_limit', 'boom', payload FROM webhook_events"
    )
    (listed,) = operate({"action": "parked"})["parked"]
    assert (listed["event_id"], listed["reason"], listed["last_error"]) == (
        paid.event_id,
        "redrive_limit",
        "boom",
    )
    shown = operate({"action": "parked", "id": listed["id"]})["parked"]
    assert shown["payload"]["id"] == paid.event_id
    assert operate({"action": "resolve", "id": listed["id"]})["error"] == (
        "say how it was resolved (resolution)"
    )
    resolved = operate(
        {"action": "resolve", "id": listed["id"], "resolution": "fixed the order", "replay": True}
    )
    assert resolved["ok"] is True
    assert len(resolved["replay"]["replayed"]) == 1
    pipeline.drain()
    assert db.execute("SELECT status FROM orders").fetchone() == {"status": "paid"}
    assert operate({"action": "parked"})["parked"] == []
    again = operate({"action": "resolve", "id": listed["id"], "resolution": "again"})
    assert again == {"ok": False, "error": f"no open parked event {listed['id']}"}
