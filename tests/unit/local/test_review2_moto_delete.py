"""A DeleteMessage racing a receive that moves a message to the DLQ, through boto3.

moto's delete scans the queue's message list and swaps in the messages it kept;
a receive that moves a poison message to the DLQ removes it from that list in
place. Interleaved, the scan skips the message after the removed one (lost: an
event in flight with a consumer is gone, never redelivered) and the swap brings
the poison message back beside its DLQ copy (parked twice). The race is made
deterministic: the delete is held mid-scan while the receive runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from hookline.local.moto_process import moto_patches
from moto import mock_aws
from moto.sqs.models import Message

NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for owner, name, replacement in moto_patches():
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1", config=NO_RETRIES)


def _queues(sqs: Any) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName="events-dlq.fifo", Attributes={"FifoQueue": "true"})
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="events.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "180",
            "RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": "1"}}',
        },
    )
    return queue["QueueUrl"], dlq["QueueUrl"]


def _receive_one(sqs: Any, url: str, body: str, group: str) -> str:
    sqs.send_message(
        QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body
    )
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert message["Body"] == body
    handle: str = message["ReceiptHandle"]
    return handle


def test_a_delete_racing_a_move_to_the_dlq_loses_nothing_and_parks_once(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, dlq = _queues(sqs)
    poison = _receive_one(sqs, url, "poison", "group-1")
    done = _receive_one(sqs, url, "done", "group-2")  # processed: the consumer deletes it
    busy = _receive_one(sqs, url, "busy", "group-3")  # in flight with another consumer
    # poison: its one receive used up, due for the DLQ at the next receive.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=poison, VisibilityTimeout=0)

    racer: list[threading.Thread] = []
    matched: list[Message] = []
    original = Message.had_receipt_handle

    def had_receipt_handle(self: Message, receipt_handle: str) -> bool:
        found = original(self, receipt_handle)
        if found and receipt_handle == done:
            matched.append(self)
            # The second match is the delete's rebuilding scan, at "done" (the first,
            # its check that the handle is known): a receive runs now, moving "poison".
            if len(matched) == 2:
                thread = threading.Thread(target=lambda: sqs.receive_message(QueueUrl=url))
                racer.append(thread)
                thread.start()
                thread.join(0.5)
        return found

    monkeypatch.setattr(Message, "had_receipt_handle", had_receipt_handle)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=done)
    racer[0].join(10)
    monkeypatch.setattr(Message, "had_receipt_handle", original)

    # "busy" is still there, in flight, its consumer's handle good; "poison" only in the DLQ.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=busy, VisibilityTimeout=60)
    counts = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    parked = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert counts == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "1",
    }
    assert [m["Body"] for m in parked] == ["poison"]
