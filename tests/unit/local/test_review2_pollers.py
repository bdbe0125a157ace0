"""The breaker's switch (UpdateEventSourceMapping Enabled=false) stops every poller of
the mapping, the ones scaled up for a backlog included; Enabled=true resumes them."""

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
    for owner, name, replacement in moto_patches():
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _eventually(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not reached")
        time.sleep(0.05)


def test_disabling_the_mapping_stops_scaled_up_pollers_and_enabling_resumes(sqs: Any) -> None:
    url = sqs.create_queue(
        QueueName="events.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "30"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    for number in range(PER_GROUP):
        for group in range(GROUPS):
            body = f"{group}:{number}"
            sqs.send_message(
                QueueUrl=url,
                MessageBody=body,
                MessageGroupId=str(group),
                MessageDeduplicationId=body,
            )
    source = QueueSource("ConsumerFunction", "EventsQueue", 2, POLLERS, True)
    lock = threading.Lock()
    pollers: set[str] = set()
    seen: list[str] = []
    after_disable: list[str] = []
    poller: QueuePoller

    def invoke(function: str, event: dict[str, Any]) -> Invocation:
        with lock:
            if not poller.enabled.is_set():
                after_disable.append(threading.current_thread().name)
            pollers.add(threading.current_thread().name)
            seen.extend(record["body"] for record in event["Records"])
            # The breaker opens once the backlog brought every poller in.
            if len(pollers) == POLLERS and poller.enabled.is_set() and not after_disable:
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
