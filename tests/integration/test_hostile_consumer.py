"""Hostile but validly signed bodies that reach the queue: recorded, never a crashed batch.

Each is posted to ReceiverFunction as the provider would sign it, then consumed by
ConsumerFunction on moto SQS and DynamoDB and a real PostgreSQL database. An event
that can never apply is parked after its own failures (MAX_PERMANENT_FAILURES, 3),
not retried forever, and it does not hold back the event behind it in its group.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hookline.database import Connection
from hookline.envelope import Envelope

from tests.support import samples
from tests.support.apigw import webhook_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order
from tests.support.signers import sign
from tests.support.stack import load_function

RECEIVER = load_function("receiver")
PLACEHOLDER = "__hostile__"


def stripe_body(event_id: str, intent: str, path: tuple[str, ...], value: str) -> bytes:
    """A Stripe payment_intent.succeeded for order-1001 with the JSON text `value` at `path`."""
    data: Any = samples.stripe_event(event_id=event_id)
    data["data"]["object"]["id"] = intent
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = PLACEHOLDER
    return json.dumps(data).replace(json.dumps(PLACEHOLDER), value).encode()


def post(provider: str, body: bytes) -> None:
    signed = sign(provider, body=body, timestamp=int(time.time()))
    answer = RECEIVER.lambda_handler(webhook_event(provider, signed.request), FakeLambdaContext())
    assert answer["statusCode"] == 200, answer["body"]


def ledger(db: Connection) -> dict[str, tuple[str, int]]:
    rows = db.execute("SELECT event_id, status, attempts FROM webhook_events").fetchall()
    return {row["event_id"]: (row["status"], row["attempts"]) for row in rows}


def assert_nothing_left(pipeline: Pipeline) -> None:
    """Every message was settled by the consumer: none waits, none went to the DLQ."""
    assert pipeline.stack.messages() == []
    assert pipeline.stack.messages(pipeline.stack.dlq_url) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("data", "object", "amount"), "9" * 4_000),  # as long as Python reads
        (("data", "object", "amount"), str(2**63)),  # one past PostgreSQL's bigint
        (("data", "object", "amount_received"), "9" * 20),
        (("data", "object", "metadata", "order_id"), '"order-1001\\u0000"'),
        (("data", "object", "metadata", "order_id"), '"order-1001\\ud800"'),
        (("data", "object", "currency"), '"u\\u0000d"'),
    ],
    ids=lambda item: item[-1][:20] if isinstance(item, tuple) else item[:20],
)
def test_a_signed_value_no_table_can_hold_is_parked_and_its_group_mate_applies(
    pipeline: Pipeline, db: Connection, path: tuple[str, ...], value: str
) -> None:
    insert_order(db, "order-1001", 2000)
    insert_order(db, "order-1002", 2000)
    post("stripe", stripe_body("evt_hostile", "pi_1", path, value))
    # The same payment's next event waits behind it in its FIFO group, then applies.
    behind = samples.stripe_event(event_id="evt_behind")
    behind["data"]["object"].update(id="pi_1", metadata={"order_id": "order-1002"})
    post("stripe", samples.encode(behind))

    pipeline.drain()

    assert ledger(db) == {"evt_hostile": ("parked", 3), "evt_behind": ("applied", 1)}
    parked = db.execute("SELECT event_id, reason FROM parked_events").fetchall()
    assert parked == [{"event_id": "evt_hostile", "reason": "permanent_failure"}]
    assert_nothing_left(pipeline)


# Values a reader can hold, in a field no handler reads: the event applies as usual.
HOLDABLE_VALUES = [
    '"gift\\u0000wrap"',  # NUL and surrogate escapes: the consumer stores U+FFFD
    '"caf\\ud800"',
    "[" * 61 + "]" * 61,  # 64 levels with the body's own three: the deepest accepted
    "9" * 4_000,
    "1e308",
]
# What a receiver before issue 11 queued: 5,000 levels parse on the Lambda runtime
# (Python 3.13) but not on 3.11; the rest no receiver refused.
QUEUED_BEFORE_VALUES = [
    "[" * 5_000 + "]" * 5_000,
    "[" * 50_000 + "]" * 50_000,
    "9" * 5_000,  # past int_max_str_digits
    "NaN",
    "1e999",
]


def test_signed_hostile_values_in_a_field_nobody_reads_are_stored_and_applied(
    pipeline: Pipeline, db: Connection
) -> None:
    for number, value in enumerate(HOLDABLE_VALUES):
        insert_order(db, f"order-{number}", 2000)
        body = stripe_body(
            f"evt_{number}", f"pi_{number}", ("data", "object", "description"), value
        )
        post("stripe", body.replace(b'"order-1001"', f'"order-{number}"'.encode()))

    pipeline.drain()

    assert ledger(db) == {f"evt_{n}": ("applied", 1) for n in range(len(HOLDABLE_VALUES))}
    orders = db.execute("SELECT DISTINCT status FROM orders").fetchall()
    assert orders == [{"status": "paid"}]
    assert_nothing_left(pipeline)


def test_bodies_queued_before_the_receiver_refused_them_are_recorded_never_a_crashed_batch(
    pipeline: Pipeline, db: Connection
) -> None:
    insert_order(db, "order-1001", 2000)
    queued = [
        Envelope(
            provider="stripe",
            event_id=f"evt_{number}",
            event_type="payment_intent.succeeded",
            object_id=f"pi_{number}",
            received_at=datetime.now(UTC),
            body=stripe_body(
                f"evt_{number}", f"pi_{number}", ("data", "object", "description"), value
            ).decode(),
        )
        for number, value in enumerate(QUEUED_BEFORE_VALUES)
    ]
    pipeline.send(queued)

    pipeline.drain()

    # Each settled: parked after its own three failures (not JSON this Python reads), or
    # applied (stored with non-finite numbers as text, see hookline.payloads).
    outcomes = ledger(db)
    assert set(outcomes) == {envelope.event_id for envelope in queued}
    assert set(outcomes.values()) <= {("parked", 3), ("applied", 1)}
    assert outcomes["evt_1"] == ("parked", 3)  # 50,000 levels: no Python reads it
    assert_nothing_left(pipeline)
