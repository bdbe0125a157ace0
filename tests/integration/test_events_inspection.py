"""Issue 13: operators look at events (`events`, `event`) and steer parked ones by event
id, through ReconcilerFunction's real handler, on a ledger holding every status.

Every answer is `{"ok": true, ...}` or `{"ok": false, "error", "kind"}`, the kind
naming the errors table's class; a malformed request is refused before any
database work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hookline.errors import error_class
from hookline.inspection import EVENT_FIELDS
from hookline.reconcile import actions

from tests.conftest import UNREACHABLE_DATABASE, point_reconciler_at
from tests.support import events
from tests.support.events import poison
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order

Handler = Any
BASE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass
class Ledger:
    """Event ids by role, in the order they were received (oldest first)."""

    created: str
    succeeded: str
    late: str
    refund: str
    ignored: str
    orphan: str
    parked: str
    resolved: str
    replay: str
    square: str  # the same event id as `succeeded`, under another provider

    def received(self) -> list[str]:
        return [
            self.created,
            self.succeeded,
            self.late,
            self.refund,
            self.ignored,
            self.orphan,
            self.parked,
            self.resolved,
            self.replay,
        ]


def ok(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["ok"] is True, answer
    return answer


def refused(answer: dict[str, Any], kind: str) -> str:
    assert answer.keys() == {"ok", "error", "kind"}, answer
    assert (answer["ok"], answer["kind"]) == (False, kind), answer
    assert error_class(kind).__name__ == kind  # a row of the errors table
    assert "\n" not in answer["error"]
    return str(answer["error"])


@pytest.fixture
def ledger(pipeline: Pipeline, reconcile: Handler, db: Any) -> Ledger:
    insert_order(db, "order-1001", 2000)
    # Created without the order id; the payment learns it from the next event.
    created = events.stripe("payment_intent.created", intent="pi_a", order_id=None, at=0)
    succeeded = events.stripe("payment_intent.succeeded", intent="pi_a", at=60)
    late = events.stripe("payment_intent.processing", intent="pi_a", at=30)
    refund = events.stripe("charge.refunded", intent="pi_a", refunded=500, at=120)
    ignored = events.stripe("customer.created", intent="cus_1", order_id=None)
    orphan = events.stripe("payment_intent.succeeded", intent="pi_o", order_id="order-ghost")
    for envelope in (created, succeeded, late, refund, ignored, orphan):
        pipeline.send([envelope])
        pipeline.drain()
    pipeline.send([poison("evt_poison_1")])
    pipeline.drain()
    pipeline.send([poison("evt_poison_2")])
    pipeline.drain()
    ok(reconcile({"action": "resolve", "id": "evt_poison_2", "resolution": "refunded by hand"}))
    replay_id = ok(reconcile({"action": "replay", "event_id": succeeded.event_id}))["replayed"][0]
    pipeline.drain()
    world = Ledger(
        created=created.event_id,
        succeeded=succeeded.event_id,
        late=late.event_id,
        refund=refund.event_id,
        ignored=ignored.event_id,
        orphan=orphan.event_id,
        parked="evt_poison_1",
        resolved="evt_poison_2",
        replay=replay_id,
        square=succeeded.event_id,
    )
    for minutes, event_id in enumerate(world.received()):
        db.execute(
            "UPDATE webhook_events SET received_at = %s WHERE provider = 'stripe'"
            " AND event_id = %s",
            (BASE + timedelta(minutes=minutes), event_id),
        )
    db.execute(
        "INSERT INTO webhook_events (provider, event_id, event_type, received_at, status,"
        " payload) VALUES ('square', %s, 'payment.updated', %s, 'applied', '{}')",
        (world.square, BASE + timedelta(minutes=len(world.received()))),
    )
    # A dead letter parked after its ledger row was lost (a restore): parked_events only.
    db.execute(
        "INSERT INTO parked_events (provider, event_id, reason, last_error, payload,"
        " event_type, object_id, received_at, headers)"
        " VALUES ('stripe', 'evt_lost', 'redrive_limit', 'boom', '{\"id\": \"evt_lost\"}',"
        " 'payment_intent.succeeded', 'pi_lost', %s, '{}')",
        (BASE,),
    )
    return world


def listed(reconcile: Handler, **filters: Any) -> list[str]:
    answer = ok(reconcile({"action": "events", **filters}))
    return [f"{row['provider']}:{row['event_id']}" for row in answer["events"]]


def stripe_ids(*event_ids: str) -> list[str]:
    return [f"stripe:{event_id}" for event_id in event_ids]


def test_events_are_listed_newest_first_and_filtered(ledger: Ledger, reconcile: Handler) -> None:
    everything = ok(reconcile({"action": "events"}))
    assert (everything["limit"], everything["more"]) == (50, False)
    assert [f"{r['provider']}:{r['event_id']}" for r in everything["events"]] == [
        f"square:{ledger.square}",
        *stripe_ids(*reversed(ledger.received())),
    ]
    first = everything["events"][0]
    assert tuple(first) == EVENT_FIELDS
    assert first["received_at"] == (BASE + timedelta(minutes=9)).isoformat()

    by_status = {
        status: listed(reconcile, status=status, provider="stripe")
        for status in ("applied", "stale", "ignored", "orphaned", "parked", "resolved", "failed")
    }
    assert by_status == {
        "applied": stripe_ids(ledger.refund, ledger.succeeded, ledger.created),
        # Replayed after the refund: nothing to do, recorded stale.
        "stale": stripe_ids(ledger.replay, ledger.late),
        "ignored": stripe_ids(ledger.ignored),
        "orphaned": stripe_ids(ledger.orphan),
        "parked": stripe_ids(ledger.parked),
        "resolved": stripe_ids(ledger.resolved),
        "failed": [],
    }
    assert listed(reconcile, provider="square") == [f"square:{ledger.square}"]
    assert listed(reconcile, type="charge.refunded") == stripe_ids(ledger.refund)
    # The created event's row names no order: its payment does.
    assert listed(reconcile, order="order-1001") == stripe_ids(
        ledger.replay, ledger.refund, ledger.late, ledger.succeeded, ledger.created
    )
    assert listed(reconcile, order="order-ghost") == stripe_ids(ledger.orphan)
    assert listed(reconcile, order="order-none") == []
    # A naive time is UTC; since is inclusive, until exclusive (received_at).
    window = {
        "since": (BASE + timedelta(minutes=2)).replace(tzinfo=None).isoformat(),
        "until": (BASE + timedelta(minutes=4)).isoformat().replace("+00:00", "Z"),
    }
    assert listed(reconcile, **window) == stripe_ids(ledger.refund, ledger.late)

    page = ok(reconcile({"action": "events", "limit": 2}))
    assert (len(page["events"]), page["limit"], page["more"]) == (2, 2, True)
    assert ok(reconcile({"action": "events", "limit": 10}))["more"] is False


def test_one_event_is_shown_with_what_it_touched(ledger: Ledger, reconcile: Handler) -> None:
    shown = ok(reconcile({"action": "event", "event_id": ledger.succeeded, "provider": "stripe"}))
    event = shown["event"]
    assert {k: event[k] for k in ("provider", "event_id", "status", "order_id", "attempts")} == {
        "provider": "stripe",
        "event_id": ledger.succeeded,
        "status": "applied",
        "order_id": "order-1001",
        "attempts": 1,
    }
    assert set(EVENT_FIELDS) <= set(event)
    assert (event["in_ledger"], event["replay_of"], event["parked"]) == (True, None, [])
    assert event["payment"]["provider_payment_id"] == "pi_a"
    assert event["payment"]["order_id"] == "order-1001"
    assert event["order"]["id"] == "order-1001"
    assert event["order"]["amount"] == 2000
    assert event["replays"] == [ledger.replay]
    assert "payload" not in event
    assert "raw_body" not in event
    with_payload = ok(
        reconcile(
            {"action": "event", "event_id": ledger.succeeded, "provider": "stripe", "payload": True}
        )
    )["event"]
    assert with_payload["payload"]["id"] == ledger.succeeded

    # The refund's object is a charge; its payment intent names the payment.
    refund = ok(reconcile({"action": "event", "event_id": ledger.refund}))["event"]
    assert refund["payment"]["provider_payment_id"] == "pi_a"
    # The created event's row has no order id; its payment leads to the order.
    created = ok(reconcile({"action": "event", "event_id": ledger.created}))["event"]
    assert (created["order_id"], created["order"]["id"]) == (None, "order-1001")
    orphan = ok(reconcile({"action": "event", "event_id": ledger.orphan}))["event"]
    assert (orphan["order_id"], orphan["order"]) == ("order-ghost", None)
    assert orphan["payment"]["provider_payment_id"] == "pi_o"
    replay = ok(reconcile({"action": "event", "event_id": ledger.replay}))["event"]
    assert (replay["replay_of"], replay["status"]) == (ledger.succeeded, "stale")

    parked = ok(reconcile({"action": "event", "event_id": ledger.parked}))["event"]
    assert parked["status"] == "parked"
    assert parked["attempts"] == 3
    assert "amount" in parked["last_error"]
    [parking] = parked["parked"]
    assert parking.keys() == {
        "id",
        "reason",
        "last_error",
        "parked_at",
        "resolved_at",
        "resolution",
    }
    assert (parking["reason"], parking["resolved_at"]) == ("permanent_failure", None)
    resolved = ok(reconcile({"action": "event", "event_id": ledger.resolved}))["event"]
    assert resolved["status"] == "resolved"
    assert resolved["parked"][0]["resolution"] == "refunded by hand"

    lost = ok(reconcile({"action": "event", "event_id": "evt_lost", "payload": True}))["event"]
    assert (lost["in_ledger"], lost["status"], lost["event_type"]) == (
        False,
        None,
        "payment_intent.succeeded",
    )
    assert [p["reason"] for p in lost["parked"]] == ["redrive_limit"]
    assert lost["payload"] == {"id": "evt_lost"}

    ambiguous = refused(
        reconcile({"action": "event", "event_id": ledger.succeeded}), "OperatorRefused"
    )
    assert "several providers (square, stripe)" in ambiguous
    square = ok(reconcile({"action": "event", "event_id": ledger.square, "provider": "square"}))
    assert (square["event"]["provider"], square["event"]["payment"]) == ("square", None)
    missing = refused(reconcile({"action": "event", "event_id": "evt_nope"}), "NotFound")
    assert missing == "no event evt_nope in the ledger or parked events"
    refused(
        reconcile({"action": "event", "event_id": ledger.created, "provider": "square"}),
        "NotFound",
    )


def test_parked_events_are_shown_and_resolved_by_event_id(
    ledger: Ledger, pipeline: Pipeline, reconcile: Handler, db: Any
) -> None:
    answer = ok(reconcile({"action": "parked"}))
    assert (answer["limit"], answer["more"]) == (50, False)
    assert [(p["event_id"], p["event_type"]) for p in answer["parked"]] == [
        ("evt_lost", "payment_intent.succeeded"),
        (ledger.parked, "payment_intent.succeeded"),
    ]
    header = answer["parked"][1]
    assert header.keys() == {
        "id",
        "provider",
        "event_id",
        "event_type",
        "reason",
        "last_error",
        "parked_at",
    }
    number = header["id"]
    by_event = ok(reconcile({"action": "parked", "id": ledger.parked}))["parked"]
    assert (by_event["id"], by_event["ledger_status"]) == (number, "parked")
    assert ok(reconcile({"action": "parked", "id": str(number)}))["parked"]["id"] == number
    assert ok(reconcile({"action": "parked", "id": number}))["parked"]["event_id"] == ledger.parked
    # A resolved parking can still be looked at.
    old = ok(reconcile({"action": "parked", "id": ledger.resolved}))["parked"]
    assert (old["resolution"], old["ledger_status"]) == ("refunded by hand", "resolved")
    refused(reconcile({"action": "parked", "id": "evt_nope"}), "NotFound")
    # A digit string no parking is numbered is an event id (Shopify's are numbers).
    db.execute(
        "INSERT INTO parked_events (provider, event_id, reason, payload)"
        " VALUES ('shopify', '4242424242', 'redrive_limit', '{}')"
    )
    numeric = ok(reconcile({"action": "parked", "id": "4242424242"}))["parked"]
    assert (numeric["provider"], numeric["ledger_status"]) == ("shopify", None)
    refused(reconcile({"action": "parked", "id": 999999}), "NotFound")

    resolved = ok(
        reconcile({"action": "resolve", "id": ledger.parked, "resolution": "customer refunded"})
    )
    assert resolved.keys() == {
        "ok",
        "resolved",
        "provider",
        "event_id",
        "resolved_at",
        "ledger_status",
    }
    assert (resolved["resolved"], resolved["event_id"], resolved["ledger_status"]) == (
        number,
        ledger.parked,
        "resolved",
    )
    # Nothing in the ledger or the status report says it needs a human any more.
    assert listed(reconcile, status="parked") == []
    report = ok(reconcile({"action": "status"}))["status"]["database"]
    assert report["ledger"] == {
        "applied": 4,
        "ignored": 1,
        "orphaned": 1,
        "resolved": 2,
        "stale": 2,
    }
    assert (report["parked"]["open"], report["parked"]["resolved"]) == (2, 2)
    assert [p["event_id"] for p in report["parked"]["latest"]] == ["4242424242", "evt_lost"]

    again = refused(
        reconcile({"action": "resolve", "id": number, "resolution": "twice"}), "OperatorRefused"
    )
    assert again.startswith(f"parked event #{number} (stripe {ledger.parked}) was already resolved")
    assert again.endswith("by note 'customer refunded'")
    refused(
        reconcile({"action": "resolve", "id": ledger.parked, "resolution": "twice"}),
        "OperatorRefused",
    )
    # A resolved event is as final as a parked one: a redelivery (past SQS's
    # deduplication window) changes nothing, and a dead copy of it is dropped.
    body = poison(ledger.parked).to_message_body()
    for queue_url, copy in ((pipeline.stack.queue_url, "late"), (pipeline.stack.dlq_url, "dead")):
        pipeline.stack.sqs.send_message(
            QueueUrl=queue_url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId=copy
        )
    assert pipeline.drain() == 1
    row = db.execute(
        "SELECT status, attempts FROM webhook_events WHERE event_id = %s", (ledger.parked,)
    ).fetchone()
    assert row == {"status": "resolved", "attempts": 3}
    run = ok(reconcile({"action": "redrive"}))
    assert (run["redriven"], run["parked"]) == (0, 0)
    assert pipeline.stack.messages(pipeline.stack.dlq_url) == []
    # An event only in parked_events is resolved by its event id too.
    lost = ok(reconcile({"action": "resolve", "id": "evt_lost", "resolution": "gone"}))
    assert lost["ledger_status"] is None


BAD_REQUESTS = [
    (
        {"action": "replay", "provider": "stripe", "since": "garbage"},
        "InvalidRequest",
        "replay: since: expected an ISO-8601 time such as 2024-05-01T12:00:00Z (naive means UTC),"
        " got 'garbage'",
    ),
    ({"action": "replay", "provider": "stripe", "since": "yesterday"}, "InvalidRequest", None),
    ({"action": "events", "until": 1700000000}, "InvalidRequest", None),
    (
        {"action": "events", "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        "InvalidRequest",
        "events: since must be before until",
    ),
    (
        {"action": "events", "since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        "InvalidRequest",
        "events: since must be before until",
    ),
    (
        {"action": "events", "status": "done"},
        "InvalidRequest",
        "events: status: expected a ledger status: received, applied, stale, ignored, orphaned,"
        " parked, resolved, failed, got 'done'",
    ),
    (
        {"action": "events", "limit": 501},
        "InvalidRequest",
        "events: limit: expected a whole number from 1 to 500, got 501",
    ),
    ({"action": "events", "limit": 0}, "InvalidRequest", None),
    ({"action": "events", "limit": True}, "InvalidRequest", None),
    (
        {"action": "events", "oder": "order-1"},
        "InvalidRequest",
        "events: unknown field 'oder'; accepted fields: since, until, provider, type, status,"
        " order, limit",
    ),
    ({"action": "events", "provider": "stripe\x00"}, "InvalidRequest", None),
    (
        {"action": "event"},
        "InvalidRequest",
        "event: event_id is required (an event id)",
    ),
    ({"action": "event", "event_id": "evt_1", "payload": "yes"}, "InvalidRequest", None),
    ({"action": "parked", "id": -1}, "InvalidRequest", None),
    ({"action": "resolve", "id": "evt_1", "resolution": "  "}, "InvalidRequest", None),
    (
        {"action": "replay", "event_id": "evt_1", "since": "2026-01-01"},
        "InvalidRequest",
        "replay: event_id replays that one event: drop type, since, until and after",
    ),
    (
        {"action": "explode"},
        "InvalidRequest",
        "unknown action 'explode'; known: status, redrive, reconcile, events, event, replay,"
        " parked, resolve",
    ),
    ({"detail": {}}, "InvalidRequest", None),
    ({"action": 7}, "InvalidRequest", None),
]


def test_malformed_requests_are_refused_before_any_database_work(
    pipeline: Pipeline, reconcile: Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the database down, a malformed request is still told what is wrong with it.
    point_reconciler_at(monkeypatch, UNREACHABLE_DATABASE)
    for request, kind, message in BAD_REQUESTS:
        error = refused(reconcile(request), kind)
        if message is not None:
            assert error == message, request
    refused(reconcile({"action": "events"}), "DatabaseUnavailable")
    run = reconcile({"action": "redrive"})
    assert (run["ok"], run["kind"], run["skipped"]) == (
        False,
        "DatabaseUnavailable",
        "database unavailable",
    )


def test_an_unexpected_failure_is_answered_and_logged(
    pipeline: Pipeline,
    reconcile: Handler,
    monkeypatch: pytest.MonkeyPatch,
    output: pytest.CaptureFixture[str],
) -> None:
    def broken(*_: Any) -> dict[str, Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(actions, "events", broken)
    output.readouterr()
    answer = reconcile({"action": "events"})
    assert refused(answer, "HooklineError") == "unexpected RuntimeError: see the reconciler's log"
    logged = [json.loads(line) for line in output.readouterr().out.splitlines() if "level" in line]
    [failure] = [line for line in logged if line["level"] == "ERROR"]
    assert failure["message"] == "operator action failed unexpectedly"
    assert "RuntimeError: a bug" in failure["exception"]


def test_a_digit_id_that_names_two_parkings_is_refused(
    ledger: Ledger, reconcile: Handler, db: Any
) -> None:
    """Shopify's event ids are digits: "7" may be parking #7 and the event id of another."""
    number = ok(reconcile({"action": "parked", "id": ledger.parked}))["parked"]["id"]
    shopify = db.execute(
        "INSERT INTO parked_events (provider, event_id, reason, payload)"
        " VALUES ('shopify', %s, 'redrive_limit', '{}') RETURNING id",
        (str(number),),
    ).fetchone()["id"]
    both = (
        f"{number} is parking #{number} (stripe {ledger.parked}) and the event id of parking"
        f" #{shopify} (shopify {number}): use #{number}, or --provider shopify"
    )
    for request in ({"action": "parked"}, {"action": "resolve", "resolution": "which?"}):
        assert refused(reconcile({**request, "id": str(number)}), "OperatorRefused") == both
    # `#N` is always the number; with a provider, the digits are that provider's event id.
    assert ok(reconcile({"action": "parked", "id": f"#{number}"}))["parked"]["event_id"] == (
        ledger.parked
    )
    by_event = ok(reconcile({"action": "parked", "id": str(number), "provider": "shopify"}))
    assert by_event["parked"]["id"] == shopify
    refused(reconcile({"action": "parked", "id": f"#{number}", "provider": "shopify"}), "NotFound")
    refused(reconcile({"action": "parked", "id": "#999999"}), "NotFound")
    for bad in ("#0", "#", "#x", "#-1", f"#{2**63}"):
        refused(reconcile({"action": "parked", "id": bad}), "InvalidRequest")
    resolved = ok(reconcile({"action": "resolve", "id": f"#{shopify}", "resolution": "by hand"}))
    assert (resolved["resolved"], resolved["provider"], resolved["event_id"]) == (
        shopify,
        "shopify",
        str(number),
    )
    # A resolved parking still answers to its event id: the digits stay ambiguous.
    refused(reconcile({"action": "parked", "id": str(number)}), "OperatorRefused")


def test_an_inspection_that_takes_too_long_is_answered_in_one_line(
    pipeline: Pipeline, reconcile: Handler, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT_MS", "100")
    ok(reconcile({"action": "status"}))  # built with that timeout
    # A migration holding the table: the read waits out its statement timeout.
    with psycopg.connect(database_url) as holder:
        holder.execute("LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE")
        answers = [
            reconcile({"action": "events"}),
            reconcile({"action": "event", "event_id": "evt_1"}),
            reconcile({"action": "replay", "provider": "stripe"}),
        ]
        holder.rollback()
    assert [refused(answer, "OperatorRefused") for answer in answers] == [
        "the query took too long: narrow it with --provider/--since",
        "the query took too long: name the event's --provider",
        "the query took too long: narrow it with --type/--since/--until",
    ]
    assert ok(reconcile({"action": "events"}))["events"] == []  # the connection goes on


def plan(db: Any, query: Any, params: Any) -> str:
    statement = psycopg.sql.SQL(query) if isinstance(query, str) else query
    rows = db.execute(psycopg.sql.SQL("EXPLAIN ") + statement, params).fetchall()
    return "\n".join(row["QUERY PLAN"] for row in rows)


def test_inspection_reads_are_index_lookups(db: Any) -> None:
    """On a large ledger each filter must be an index lookup (migration 0005), not a
    scan: with sequential scans priced out, each plan uses the index made for it."""
    db.execute("SET enable_seqscan = off")
    for fields, indexes in (
        ({"status": "parked"}, {"webhook_events_status_received"}),
        ({"type": "charge.refunded"}, {"webhook_events_type_received"}),
        (
            {"order": "order-1001"},
            {
                "webhook_events_order",
                "webhook_events_object",
                "webhook_events_payment_intent",
                "payments_order_id",
            },
        ),
    ):
        query, params = actions.events_query(actions.EventsRequest.parse("events", fields))
        shown = plan(db, query, params)
        assert all(f" {index} " in shown for index in indexes), (fields, shown)
        assert "Seq Scan" not in shown, (fields, shown)
    key = {"provider": "stripe", "id": "evt_1"}
    assert " webhook_events_replay_of " in plan(db, actions.REPLAYS, key)
    # A replay range, resumed after a position: the range's own index, in its order.
    since = datetime(2026, 1, 1, tzinfo=UTC)
    replay_range = plan(
        db,
        actions.REPLAY_RANGE,
        ("stripe", None, None, since, since, None, None, "evt_1", since, "evt_1", 1001),
    )
    assert " webhook_events_replay_range " in replay_range
    assert "Sort" not in replay_range
    lookup = plan(db, actions.event_lookup(None), key)
    assert " webhook_events_pkey " in lookup
    assert " parked_events_event " in lookup
    assert "Seq Scan" not in lookup
