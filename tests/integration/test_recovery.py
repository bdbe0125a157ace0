"""Missed events: listed from the provider's API, enqueued once, applied once, counted.

The provider APIs are the sandbox a test starts, serving Stripe's and Square's
documented shapes with pages, a 429 and outages.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hookline.envelope import RECOVERED_HEADER, Envelope
from hookline.local.sandbox import ProviderSandbox, serve
from hookline.reconcile.build import reconciler
from hookline.simulate.events import Subject, build

from tests.conftest import MERCADOPAGO_TOKEN
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order
from tests.support.stack import default_secret_document

STRIPE_KEY = "sk_test_fake_recovery_key"
SQUARE_TOKEN = "EAAA-fake-recovery-token"
Handler = Any


@pytest.fixture
def apis() -> Iterator[ProviderSandbox]:
    sandbox = ProviderSandbox(
        mercadopago_token=MERCADOPAGO_TOKEN,
        stripe_api_key=STRIPE_KEY,
        square_access_token=SQUARE_TOKEN,
        page_size=2,
    )
    with serve(sandbox) as served:
        yield served


@pytest.fixture
def recover(
    pipeline: Pipeline,
    reconcile: Handler,
    apis: ProviderSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> Handler:
    """The reconciler with the sandbox as Stripe's and Square's APIs, and their credentials."""
    monkeypatch.setenv("STRIPE_API_URL", apis.stripe_url)
    monkeypatch.setenv("SQUARE_API_URL", apis.square_url)
    pipeline.stack.put_secret(
        {
            **default_secret_document(),
            "mercadopago_access_token": MERCADOPAGO_TOKEN,
            "stripe_api_key": STRIPE_KEY,
            "square_access_token": SQUARE_TOKEN,
        }
    )
    return reconcile


def provider_event(
    provider: str, event_type: str, order_id: str, minutes_ago: int
) -> dict[str, Any]:
    rng = random.Random(f"{provider}{order_id}{event_type}")
    moment = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    built = build(
        provider, event_type, Subject.new(rng, order_id=order_id), rng, occurred_at=moment
    )
    body: dict[str, Any] = json.loads(built.body)
    return body


def queued(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in pipeline.stack.messages()]


def test_missed_stripe_events_are_enqueued_applied_once_and_counted(
    pipeline: Pipeline, recover: Handler, apis: ProviderSandbox, db: Any
) -> None:
    for n in range(5):
        insert_order(db, f"order-r{n}", 2000)
    missed = [
        provider_event("stripe", "payment_intent.succeeded", f"order-r{n}", 60 - n)
        for n in range(5)
    ]
    unhandled = {**missed[0], "id": "evt_customer", "type": "customer.created"}
    apis.stripe_events = [*missed, unhandled]
    # One of them did arrive as a webhook: it is in the ledger already.
    arrived = Envelope(
        provider="stripe",
        event_id=missed[0]["id"],
        event_type="payment_intent.succeeded",
        object_id=missed[0]["data"]["object"]["id"],
        occurred_at=datetime.now(UTC),
        received_at=datetime.now(UTC),
        body=json.dumps(missed[0]),
    )
    pipeline.send([arrived])
    pipeline.drain()
    apis.failures = [429]  # Stripe's rate limit, with Retry-After: 1

    answer = recover({"action": "reconcile"})

    assert answer["recovered"] == 4
    bodies = queued(pipeline)
    assert sorted(b["event_id"] for b in bodies) == sorted(e["id"] for e in missed[1:])
    assert all(b["headers"][RECOVERED_HEADER] == "true" for b in bodies)
    # The 429, then 3 pages of 2 (6 events listed).
    assert len([r for r in apis.requests if r.startswith("/v1/events")]) == 4
    pipeline.drain()
    statuses = {
        r["event_id"]: (r["status"], r["attempts"])
        for r in db.execute("SELECT event_id, status, attempts FROM webhook_events")
    }
    assert statuses == {e["id"]: ("applied", 1) for e in missed}
    run = db.execute("SELECT recovered, checkpoints FROM reconciliation_runs").fetchone()
    assert run["recovered"] == 4
    assert set(run["checkpoints"]) == {"stripe", "square"}

    # The next run finds nothing new.
    assert recover({"action": "reconcile"})["recovered"] == 0
    assert queued(pipeline) == []


def test_missed_square_events_are_found_through_the_search_pages(
    pipeline: Pipeline, recover: Handler, apis: ProviderSandbox, db: Any
) -> None:
    insert_order(db, "order-sq", 2000)
    missed = [
        provider_event("square", kind, "order-sq", minutes)
        for kind, minutes in (("payment.created", 30), ("payment.updated", 29))
    ]
    for n, event in enumerate(missed):
        event["data"]["id"] = event["data"]["object"]["payment"]["id"] = "sq-pay-1"
        event["event_id"] = f"sq-missed-{n}"
    old = {
        **provider_event("square", "payment.updated", "order-old", 60 * 48),
        "event_id": "sq-old",
    }
    apis.square_events = [*missed, old]
    assert recover({"action": "reconcile"})["recovered"] == 2
    pipeline.drain()
    assert db.execute("SELECT status FROM orders WHERE id = 'order-sq'").fetchone() == {
        "status": "paid"
    }
    assert db.execute("SELECT count(*) AS n FROM webhook_events").fetchone() == {"n": 2}


def test_an_api_outage_keeps_the_checkpoint_and_the_run_goes_on(
    pipeline: Pipeline, recover: Handler, apis: ProviderSandbox, db: Any
) -> None:
    assert recover({"action": "reconcile"})["ok"] is True
    first = db.execute("SELECT checkpoints FROM reconciliation_runs").fetchone()["checkpoints"]
    apis.down = True
    answer = recover({"action": "reconcile"})
    assert answer["ok"] is True
    assert answer["recovered"] == 0
    last = db.execute(
        "SELECT status, checkpoints FROM reconciliation_runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert last["status"] == "succeeded"
    assert last["checkpoints"] == first


def test_without_an_api_credential_nothing_is_listed(
    pipeline: Pipeline, recover: Handler, apis: ProviderSandbox
) -> None:
    pipeline.stack.put_secret(default_secret_document())
    reconciler.cache_clear()
    assert recover({"action": "reconcile"})["recovered"] == 0
    assert apis.requests == []
