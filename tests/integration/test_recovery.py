"""Missed events: listed from the provider's API, enqueued once, applied once, counted.

The provider APIs are the sandbox a test starts, serving Stripe's and Square's
documented shapes with pages, filters, a 429 and outages. The first tests go
through ReconcilerFunction's real handler; the others drive `Recoverer` itself,
with a clock that advances with each API request (so a deadline falls after a
known number of pages), a queue lag of their choosing, and a checkpoint saver
that writes the run row as the reconciler does.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.stub import Stubber
from hookline import template
from hookline.clients.events import PAGE_SECONDS, EventListing, SquareEvents, StripeEvents
from hookline.deadline import Deadline
from hookline.envelope import RECOVERED_HEADER, Envelope
from hookline.handlers import registry
from hookline.local.sandbox import ProviderSandbox, serve
from hookline.providers import WebhookRequest, build_registry
from hookline.queue import EventQueue
from hookline.reconcile.backlog import CONSERVATIVE_LAG, QueueLag
from hookline.reconcile.build import queue_lag, reconciler
from hookline.reconcile.recover import Recoverer, RecoveryResult, latest_checkpoints
from hookline.settings import ReconcilerSettings
from hookline.simulate.events import Subject, build
from psycopg.types.json import Jsonb

from tests.conftest import MERCADOPAGO_TOKEN
from tests.support.lambda_context import FakeLambdaContext
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order
from tests.support.stack import default_secret_document, load_function

STRIPE_KEY = "sk_test_fake_recovery_key"
SQUARE_TOKEN = "EAAA-fake-recovery-token"
Handler = Any
# The fake clock's seconds per API request: less than PAGE_SECONDS, so that a
# deadline stops the listing before each call's own fitting to it would.
SECONDS_PER_REQUEST = 2.0


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
    """The reconciler with the sandbox as Stripe's and Square's APIs, and their credentials,
    invoked with the time template.yaml gives ReconcilerFunction (its run budgets from it)."""
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
    timeout = float(
        template.resource(template.load(), "ReconcilerFunction")["Properties"]["Timeout"]
    )
    app = load_function("reconciler")

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        context = FakeLambdaContext(
            function_name="hookline-ReconcilerFunction", timeout_seconds=timeout
        )
        answer: dict[str, Any] = app.lambda_handler(event, context)
        return answer

    return invoke


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


def stripe_event_at(
    order_id: str, moment: datetime, event_type: str = "payment_intent.succeeded"
) -> dict[str, Any]:
    event = provider_event("stripe", event_type, order_id, 0)
    event["created"] = int(moment.timestamp())
    return event


def square_event_at(order_id: str, moment: datetime, event_type: str) -> dict[str, Any]:
    event = provider_event("square", "payment.updated", order_id, 0)
    event["type"] = event_type
    event["created_at"] = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return event


def queued(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in pipeline.stack.messages()]


class RecordingQueue(EventQueue):
    """EventsQueue, remembering each event id SQS accepted (SQS FIFO itself would
    hide a second send of one event behind its deduplication)."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline.stack.queue_url, pipeline.stack.sqs)
        self.sent: list[str] = []

    def send(self, envelope: Envelope) -> str:
        message_id = super().send(envelope)
        assert envelope.headers[RECOVERED_HEADER] == "true"
        self.sent.append(envelope.event_id)
        return message_id


@dataclass
class RunRow:
    """A reconciliation_runs row saving checkpoints as the reconciler does."""

    db: Any
    id: int
    previous: dict[str, str]
    saved: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def start(cls, db: Any) -> RunRow:
        previous = latest_checkpoints(db)
        row = db.execute(
            "INSERT INTO reconciliation_runs (checkpoints) VALUES (%s) RETURNING id",
            (Jsonb(previous),),
        ).fetchone()
        return cls(db, row["id"], previous)

    def save(self, provider: str, iso: str) -> None:
        self.db.execute(
            "UPDATE reconciliation_runs SET checkpoints = checkpoints"
            " || jsonb_build_object(%s::text, %s::text) WHERE id = %s",
            (provider, iso, self.id),
        )
        self.saved.append((provider, iso))


def run_recovery(
    recoverer: Recoverer, db: Any, now: datetime, deadline: Deadline | None = None
) -> tuple[RecoveryResult, RunRow]:
    """One run's recovery step; its row stays 'running', as after a Lambda timeout."""
    row = RunRow.start(db)
    result = recoverer.run(db, row.previous, now, deadline or Deadline.never(), row.save)
    return result, row


def listings(apis: ProviderSandbox, *providers: str) -> Callable[[], list[EventListing]]:
    """The sandbox's Stripe and/or Square event listings, as the reconciler builds them."""

    def made() -> list[EventListing]:
        found: list[EventListing] = []
        if "stripe" in providers:
            found.append(StripeEvents(lambda: STRIPE_KEY, apis.stripe_url))
        if "square" in providers:
            found.append(SquareEvents(lambda: SQUARE_TOKEN, apis.square_url))
        return found

    return made


def request_clock(apis: ProviderSandbox) -> Callable[[], float]:
    """Time that passes only when the provider API is called."""
    return lambda: SECONDS_PER_REQUEST * len(apis.requests)


def deadline_after_requests(apis: ProviderSandbox, requests: int) -> Deadline:
    """A deadline that lets exactly `requests` more API requests start."""
    clock = request_clock(apis)
    return Deadline(clock() + SECONDS_PER_REQUEST * (requests - 1) + PAGE_SECONDS, clock)


def floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def stripe_requests(apis: ProviderSandbox) -> list[list[tuple[str, str]]]:
    return [parse_qsl(urlsplit(r).query) for r in apis.requests if urlsplit(r).path == "/v1/events"]


def records(printed: str, message: str) -> list[dict[str, Any]]:
    """The structured log records with this message among the printed lines."""
    found = []
    for line in printed.splitlines():
        if line.startswith("{") and f'"{message}"' in line:
            document = json.loads(line)
            if document.get("message") == message:
                found.append(document)
    return found


# Through ReconcilerFunction's real handler.


def test_missed_stripe_events_are_enqueued_applied_once_and_counted(
    pipeline: Pipeline, recover: Handler, apis: ProviderSandbox, db: Any
) -> None:
    for n in range(5):
        insert_order(db, f"order-r{n}", 2000)
    missed = [
        provider_event("stripe", "payment_intent.succeeded", f"order-r{n}", 50 - n)
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
    # The 429 and its retry, then one page for each hour of the 24-hour lookback
    # but the last, where the 5 handled events (the type filter leaves
    # customer.created out) take 3 pages of 2.
    assert len(stripe_requests(apis)) == 1 + 23 + 3
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
    assert set(first) == {"stripe", "square"}
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


# Recoverer itself: time budget, type filter, queue lag, bad items.


def test_a_first_run_longer_than_its_time_budget_checkpoints_each_hour_and_the_next_finishes(
    pipeline: Pipeline, apis: ProviderSandbox, db: Any
) -> None:
    now = datetime.now(UTC)
    start = floor_second(now - timedelta(hours=24))
    end = floor_second(now - timedelta(minutes=10))
    # Three events in each hour of the lookback (two pages of 2 per hour); the
    # :55 one of each hour is in the next run's overlap, the last one is still
    # within the grace period (its webhook may be on its way).
    moments = [start + timedelta(hours=h, minutes=m) for h in range(24) for m in (5, 25, 55)]
    apis.stripe_events = [stripe_event_at(f"order-b{n}", at) for n, at in enumerate(moments)]
    ids = {at: event["id"] for at, event in zip(moments, apis.stripe_events, strict=True)}
    queue = RecordingQueue(pipeline)
    recoverer = Recoverer(
        listings(apis, "stripe"), queue, registry.event_types, lookback=timedelta(hours=24)
    )

    # Five hours and the first page of the sixth fit the budget.
    first, row = run_recovery(recoverer, db, now, deadline_after_requests(apis, 11))

    assert len(stripe_requests(apis)) == 11
    hours = [(start + timedelta(hours=h)).isoformat() for h in range(1, 6)]
    assert row.saved == [("stripe", iso) for iso in hours]
    assert first.checkpoints["stripe"] == hours[-1]
    # The sixth hour was cut short: none of it enqueued, its progress not saved.
    assert sorted(queue.sent) == sorted(
        ids[at] for at in moments if at < start + timedelta(hours=5)
    )
    assert first.enqueued == {"stripe": 15}
    assert first.total == 15
    # Its run row stays 'running' (as when the Lambda timeout kills a run), yet
    # its checkpoint is what the next run starts from.
    assert latest_checkpoints(db) == {"stripe": hours[-1]}

    pipeline.drain()  # The consumer applies what was recovered meanwhile.
    second, row = run_recovery(recoverer, db, now)

    assert row.saved[-1] == ("stripe", end.isoformat())
    expected = sorted(ids[at] for at in moments if at < end)
    assert sorted(queue.sent) == expected, "each missing event enqueued exactly once"
    assert second.total == len(expected) - 15
    assert second.failed == []


def test_only_the_event_types_a_handler_applies_are_listed(
    pipeline: Pipeline, apis: ProviderSandbox, db: Any
) -> None:
    now = datetime.now(UTC)
    handled = stripe_event_at("order-t1", now - timedelta(minutes=30))
    unhandled = {
        **stripe_event_at("order-t2", now - timedelta(minutes=31)),
        "type": "customer.created",
    }
    square_handled = square_event_at("order-t3", now - timedelta(minutes=30), "payment.updated")
    square_unhandled = square_event_at("order-t4", now - timedelta(minutes=31), "customer.created")
    apis.stripe_events = [handled, unhandled]
    apis.square_events = [square_handled, square_unhandled]
    queue = RecordingQueue(pipeline)
    recoverer = Recoverer(
        listings(apis, "stripe", "square"),
        queue,
        registry.event_types,
        lookback=timedelta(hours=2),
    )

    result, _ = run_recovery(recoverer, db, now)

    assert sorted(queue.sent) == sorted([handled["id"], square_handled["event_id"]])
    assert result.skipped == 0, "the API filtered, nothing unhandled was listed"
    requested = stripe_requests(apis)
    assert requested
    for params in requested:
        assert {v for k, v in params if k == "types[]"} == set(registry.event_types("stripe"))
        assert {k for k, _ in params} >= {"created[gte]", "created[lt]"}
    searches = [b for r, b in zip(apis.requests, apis.bodies, strict=True) if r == "/v2/events"]
    assert searches
    for body in searches:
        query_filter = body["query"]["filter"]
        assert query_filter["event_types"] == registry.event_types("square")
        assert set(query_filter["created_at"]) == {"start_at", "end_at"}

    # More types than Stripe takes at once: several listings of at most 20 each.
    # A provider with no handled type is not listed at all.
    many = [*registry.event_types("stripe"), *(f"team.event_{n}" for n in range(16))]
    apis.requests.clear()
    apis.bodies.clear()
    db.execute("TRUNCATE reconciliation_runs")
    recoverer = Recoverer(
        listings(apis, "stripe", "square"),
        queue,
        lambda provider: many if provider == "stripe" else [],
        lookback=timedelta(minutes=30),
    )
    run_recovery(recoverer, db, now)
    requested = stripe_requests(apis)
    lists = [[v for k, v in params if k == "types[]"] for params in requested]
    assert len(lists) == 2
    assert all(len(names) <= 20 for names in lists)
    assert sorted(name for names in lists for name in names) == sorted(many)
    assert "/v2/events" not in apis.requests


def test_an_event_still_waiting_in_the_queue_is_not_recovered(
    pipeline: Pipeline, apis: ProviderSandbox, db: Any
) -> None:
    now = datetime.now(UTC)
    waiting = stripe_event_at("order-w1", now - timedelta(minutes=20))
    missed = stripe_event_at("order-w2", now - timedelta(hours=2, minutes=7))
    apis.stripe_events = [waiting, missed]
    # Its webhook arrived and waits in EventsQueue behind a backlog: no ledger row yet.
    stripe = build_registry()["stripe"]
    body = json.dumps(waiting).encode()
    pipeline.send([stripe.normalize(WebhookRequest(body=body), received_at=now)])
    lag = [timedelta(minutes=25)]
    queue = RecordingQueue(pipeline)
    recoverer = Recoverer(
        listings(apis, "stripe", "square"),
        queue,
        registry.event_types,
        lookback=timedelta(hours=3),
        queue_lag=lambda: lag[0],
    )

    first, row = run_recovery(recoverer, db, now)

    assert queue.sent == [missed["id"]]
    assert first.total == 1
    # Nothing younger than the lag (and the grace period) was listed as missed.
    assert row.saved[-1] == ("square", floor_second(now - timedelta(minutes=35)).isoformat())
    assert first.checkpoints["stripe"] == floor_second(now - timedelta(minutes=35)).isoformat()

    pipeline.drain()  # The backlog clears: the waiting event applies.
    lag[0] = timedelta(0)
    second, _ = run_recovery(recoverer, db, now + timedelta(minutes=5))

    assert queue.sent == [missed["id"]]
    assert second.total == 0
    assert second.checkpoints["stripe"] == floor_second(now - timedelta(minutes=5)).isoformat()
    assert db.execute("SELECT count(*) AS n FROM webhook_events").fetchone() == {"n": 2}


def test_a_malformed_and_an_oversized_listed_event_are_set_aside_and_the_rest_recovered(
    pipeline: Pipeline, apis: ProviderSandbox, db: Any, output: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    good = [stripe_event_at(f"order-g{n}", now - timedelta(minutes=30 + n)) for n in range(3)]
    malformed = {**stripe_event_at("order-bad", now - timedelta(minutes=29)), "id": "evt_bad"}
    malformed["data"] = {"object": {"id": {"not": "an id"}}}
    oversized = {**stripe_event_at("order-big", now - timedelta(minutes=28)), "id": "evt_big"}
    oversized["data"]["object"]["metadata"]["padding"] = "x" * 1_100_000
    apis.stripe_events = [good[0], malformed, good[1], oversized, good[2]]
    queue = RecordingQueue(pipeline)
    recoverer = Recoverer(
        listings(apis, "stripe"), queue, registry.event_types, lookback=timedelta(hours=1)
    )
    output.readouterr()

    result, row = run_recovery(recoverer, db, now)

    assert sorted(queue.sent) == sorted(e["id"] for e in good)
    assert result.enqueued == {"stripe": 3}
    assert result.skipped == 2
    assert result.failed == []
    assert row.saved == [("stripe", floor_second(now - timedelta(minutes=10)).isoformat())]
    printed = output.readouterr().out
    assert '"RecoverySkipped"' in printed
    skipped = {(r["event_id"], r["reason"]) for r in records(printed, "listed event skipped")}
    assert skipped == {("evt_bad", "malformed"), ("evt_big", "too_large")}


def test_a_sub_window_too_dense_for_one_run_is_halved_until_it_fits(
    pipeline: Pipeline, apis: ProviderSandbox, db: Any
) -> None:
    now = datetime.now(UTC)
    start = floor_second(now - timedelta(hours=1))
    end = floor_second(now - timedelta(minutes=10))
    # 12 events (6 pages) in the 50 minutes to list, 6 in each half.
    moments = [start + timedelta(minutes=m) for m in (*range(1, 7), *range(26, 32))]
    apis.stripe_events = [stripe_event_at(f"order-d{n}", at) for n, at in enumerate(moments)]
    queue = RecordingQueue(pipeline)
    recoverer = Recoverer(
        listings(apis, "stripe"), queue, registry.event_types, lookback=timedelta(hours=1)
    )

    # Each run may make 4 requests. 50 minutes take 6: no progress, the next run halves.
    first, row = run_recovery(recoverer, db, now, deadline_after_requests(apis, 4))
    assert row.saved == []
    assert queue.sent == []
    assert first.total == 0

    _, row = run_recovery(recoverer, db, now, deadline_after_requests(apis, 4))
    assert row.saved == [("stripe", (start + timedelta(minutes=25)).isoformat())]
    assert sorted(queue.sent) == sorted(e["id"] for e in apis.stripe_events[:6])

    pipeline.drain()
    third, row = run_recovery(recoverer, db, now, deadline_after_requests(apis, 4))
    assert row.saved[-1] == ("stripe", end.isoformat())
    assert sorted(queue.sent) == sorted(e["id"] for e in apis.stripe_events)
    assert third.total == 6


# The queue lag, from CloudWatch's AWS/SQS metrics (moto).


def test_queue_lag_is_the_oldest_message_age_from_cloudwatch(aws: None) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/hookline-EventsQueue.fifo"
    lag = QueueLag.of_queue_url(cloudwatch, queue_url)
    assert lag.queue_name == "hookline-EventsQueue.fifo"
    assert lag() == timedelta(0), "no data points: nothing waits"

    now = datetime.now(UTC)
    for queue_name, ages in (
        ("hookline-EventsQueue.fifo", (300.0, 420.0)),
        ("another-queue.fifo", (9000.0,)),
    ):
        cloudwatch.put_metric_data(
            Namespace="AWS/SQS",
            MetricData=[
                {
                    "MetricName": "ApproximateAgeOfOldestMessage",
                    "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
                    "Timestamp": now - timedelta(minutes=minutes),
                    "Value": age,
                    "Unit": "Seconds",
                }
                for minutes, age in enumerate(ages, start=1)
            ],
        )
    assert lag() == timedelta(seconds=420)
    # Older than the window: no longer counts.
    assert QueueLag(cloudwatch, "another-queue.fifo", window=timedelta(seconds=30))() == (
        timedelta(0)
    )


def test_queue_lag_is_conservative_when_cloudwatch_fails(
    aws: None, output: pytest.CaptureFixture[str]
) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    with Stubber(cloudwatch) as stub:
        stub.add_client_error("get_metric_statistics", service_error_code="Throttling")
        assert QueueLag(cloudwatch, "hookline-EventsQueue.fifo")() == CONSERVATIVE_LAG
    assert timedelta(hours=1) <= CONSERVATIVE_LAG
    printed = output.readouterr().out
    assert records(printed, "queue age unknown: recovery assumes a conservative lag")


def test_the_reconcilers_lag_counts_events_waiting_in_the_dlq_too(aws: None) -> None:
    """Webhooks that arrived but wait in EventsDLQ (the redrive step takes 100 a run)
    have no ledger row either: recovery must not list them as missed."""
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    base = "https://sqs.us-east-1.amazonaws.com/123456789012"
    settings = ReconcilerSettings.from_env(
        {
            "QUEUE_URL": f"{base}/hookline-EventsQueue.fifo",
            "DLQ_URL": f"{base}/hookline-EventsDLQ.fifo",
            "SECRETS_NAME": "hookline/webhook-secrets",
            "DATABASE_URL": "postgresql://unused",
        }
    )
    lag = queue_lag(settings)
    assert lag() == timedelta(0)
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": "hookline-EventsDLQ.fifo"}],
                "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
                "Value": 3600.0,
                "Unit": "Seconds",
            }
        ],
    )
    assert lag() == timedelta(hours=1)
