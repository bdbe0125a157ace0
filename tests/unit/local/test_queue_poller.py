"""The SQS event source: pollers scale with the backlog, every message is delivered
once, in its group's order, and only what the function did not fail is deleted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hookline.local.moto_process import moto_patches
from hookline.local.runtime import Invocation
from hookline.local.sources import QueuePoller
from hookline.local.wiring import QueueSource
from moto import mock_aws

GROUPS = 6
PER_GROUP = 10
POLLERS = 3


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # As the local stack runs moto: unpatched, two racing receives can take
    # messages of one group at once, out of order.
    for owner, name, replacement in moto_patches():
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _queue(sqs: Any) -> tuple[str, str]:
    url = sqs.create_queue(
        QueueName="events.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "30"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _backlog(sqs: Any, url: str) -> None:
    """PER_GROUP messages in each of GROUPS groups, "group:number", in order."""
    for number in range(PER_GROUP):
        for group in range(GROUPS):
            body = f"{group}:{number}"
            sqs.send_message(
                QueueUrl=url,
                MessageBody=body,
                MessageGroupId=str(group),
                MessageDeduplicationId=body,
            )


def _eventually(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not reached")
        time.sleep(0.05)


def test_a_backlog_is_shared_by_more_pollers_and_each_group_keeps_its_order(sqs: Any) -> None:
    url, arn = _queue(sqs)
    _backlog(sqs, url)
    seen: list[str] = []
    active: list[int] = []
    lock = threading.Lock()

    def invoke(function: str, event: dict[str, Any]) -> Invocation:
        with lock:
            seen.extend(record["body"] for record in event["Records"])
            active.append(poller.active)
        time.sleep(0.05)  # a function that takes a while: the backlog stays
        return Invocation("request", result={"batchItemFailures": []})

    source = QueueSource("ConsumerFunction", "EventsQueue", 10, 3, True)
    poller = QueuePoller(source, url, arn, sqs, invoke, lambda *_: None, "us-east-1")
    poller.start()
    try:
        _eventually(lambda: len(seen) == GROUPS * PER_GROUP)
    finally:
        poller.stop(5)

    assert sorted(seen) == sorted(f"{g}:{n}" for g in range(GROUPS) for n in range(PER_GROUP))
    for group in range(GROUPS):
        order = [int(body.split(":")[1]) for body in seen if body.startswith(f"{group}:")]
        assert order == sorted(order)
    # Full batches brought more pollers in (whether they then found a free group
    # is the scheduler's business: every group may be in flight already).
    assert max(active) > 1
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_a_failed_item_stays_on_the_queue_and_the_rest_are_deleted(sqs: Any) -> None:
    url, arn = _queue(sqs)
    for body in ("good", "bad"):
        sqs.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId=body, MessageDeduplicationId=body
        )

    def invoke(function: str, event: dict[str, Any]) -> Invocation:
        failed = [
            {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"
        ]
        return Invocation("request", result={"batchItemFailures": failed})

    source = QueueSource("ConsumerFunction", "EventsQueue", 10, 2, True)
    poller = QueuePoller(source, url, arn, sqs, invoke, lambda *_: None, "us-east-1")
    received = 0
    while received < 2:
        received += poller.poll_once()

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # "bad", in flight
    assert attributes["ApproximateNumberOfMessages"] == "0"


def test_a_poller_that_meets_an_unexpected_error_reports_it_and_keeps_polling(
    sqs: Any,
) -> None:
    """As Lambda's mapping does: a failure to invoke (a container that cannot start)
    never stops the polling; the message comes back and is delivered."""
    url, arn = _queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="m", MessageGroupId="g", MessageDeduplicationId="m")
    calls: list[str] = []
    reports: list[str] = []

    def invoke(function: str, event: dict[str, Any]) -> Invocation:
        calls.append(event["Records"][0]["body"])
        if len(calls) == 1:
            raise OSError("cannot start the container")
        return Invocation("request", result={"batchItemFailures": []})

    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})
    source = QueueSource("ConsumerFunction", "EventsQueue", 10, 1, True)
    poller = QueuePoller(
        source, url, arn, sqs, invoke, lambda _, line: reports.append(line), "us-east-1"
    )
    poller.start()
    try:
        _eventually(lambda: len(calls) == 2)
    finally:
        poller.stop(5)
    assert any("OSError: cannot start the container" in line for line in reports)


def test_disabling_the_mapping_stops_scaled_up_pollers_and_enabling_resumes(sqs: Any) -> None:
    """The breaker's switch (UpdateEventSourceMapping Enabled=false) stops every poller
    of the mapping, the ones scaled up for a backlog included; Enabled=true resumes them."""
    url, arn = _queue(sqs)
    _backlog(sqs, url)
    source = QueueSource("ConsumerFunction", "EventsQueue", 2, POLLERS, True)
    lock = threading.Lock()
    seen: list[str] = []
    after_disable: list[str] = []
    poller: QueuePoller

    def invoke(function: str, event: dict[str, Any]) -> Invocation:
        with lock:
            if not poller.enabled.is_set():
                after_disable.append(threading.current_thread().name)
            seen.extend(record["body"] for record in event["Records"])
            # The breaker opens once the backlog brought every poller in.
            if poller.active == POLLERS and poller.enabled.is_set() and not after_disable:
                poller.enabled.clear()
                after_disable.append("disabled")
        time.sleep(0.05)
        return Invocation("request", result={"batchItemFailures": []})

    poller = QueuePoller(source, url, arn, sqs, invoke, lambda *_: None, "us-east-1")
    poller.start()
    try:
        _eventually(lambda: not poller.enabled.is_set())
        # Long enough for every poller to have polled again, were it still polling.
        time.sleep(2.5)
        with lock:
            paused_at = len(seen)
            late = list(after_disable[1:])
        # At most the receives already under way when the switch flipped, one per poller.
        assert len(late) <= POLLERS - 1, late
        assert paused_at < GROUPS * PER_GROUP
        poller.enabled.set()
        _eventually(lambda: len(seen) == GROUPS * PER_GROUP)
    finally:
        poller.stop(5)

    assert sorted(seen) == sorted(f"{g}:{n}" for g in range(GROUPS) for n in range(PER_GROUP))
