"""The fixes `hookline local` applies to moto's SQS, through the real boto3 client.

The race is made deterministic: the first receive is held, mid-scan, while a
second receive runs; unpatched moto 5.2.5 fails the first with ValueError from
`list.remove` (answered 500 in server mode), leaving the messages it had marked received invisible
for the queue's whole visibility timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from hookline.local.moto_process import moto_patches
from moto import mock_aws
from moto.sqs.models import Message

NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1", config=NO_RETRIES)


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, name, replacement in moto_patches():
        monkeypatch.setattr(owner, name, replacement)


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


def _send(sqs: Any, url: str, body: str, group: str) -> None:
    sqs.send_message(
        QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body
    )


def _race(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, dict[str, Any]]:
    """A poison message due for the DLQ and a good one; two receives racing over them.

    Returns the queue, the DLQ, and what the second receive got (or raised).
    """
    url, dlq = _queues(sqs)
    _send(sqs, url, "poison", "group-1")
    received = sqs.receive_message(QueueUrl=url)["Messages"]
    # Its one receive used up: the next receive that sees it moves it to the DLQ.
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    _send(sqs, url, "good", "group-2")

    second: dict[str, Any] = {}

    def second_receive() -> None:
        try:
            second["messages"] = sqs.receive_message(QueueUrl=url).get("Messages", [])
        except ClientError as error:
            second["error"] = error

    original = Message.mark_received
    held = threading.Event()

    def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        # The first receive, past the poison message and marking the good one:
        # let a second receive run now (unpatched, it completes; patched, it waits).
        if not held.is_set():
            held.set()
            racer = threading.Thread(target=second_receive)
            racer.start()
            racer.join(0.5)
            second["thread"] = racer
        original(self, visibility_timeout)

    monkeypatch.setattr(Message, "mark_received", mark_received)
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    second["thread"].join(10)
    second["first"] = [m["Body"] for m in first.get("Messages", [])]
    return url, dlq, second


def test_unpatched_moto_fails_a_receive_that_races_another_to_the_dlq(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bug the patch answers (in server mode, the 500): if moto fixes it, this
    # fails, and the patch can go.
    with pytest.raises(ValueError, match=r"list\.remove"):
        _race(sqs, monkeypatch)


@pytest.mark.usefixtures("patched")
def test_racing_receives_move_a_poison_message_to_the_dlq_once_and_lose_nothing(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, dlq, second = _race(sqs, monkeypatch)

    assert second["first"] == ["good"]
    assert "error" not in second
    assert second["messages"] == []  # group-2 is in flight, the poison message gone
    parked = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in parked] == ["poison"]


@pytest.mark.usefixtures("patched")
def test_queue_counts_are_moto_s_own(sqs: Any) -> None:
    url, _ = _queues(sqs)
    for number in range(3):
        _send(sqs, url, f"event-{number}", f"group-{number}")
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    delayed = sqs.create_queue(QueueName="delayed", Attributes={"DelaySeconds": "900"})
    sqs.send_message(QueueUrl=delayed["QueueUrl"], MessageBody="later")

    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    later = sqs.get_queue_attributes(QueueUrl=delayed["QueueUrl"], AttributeNames=names)

    assert counts == {
        "ApproximateNumberOfMessages": "2",
        "ApproximateNumberOfMessagesNotVisible": "1",
        "ApproximateNumberOfMessagesDelayed": "0",
    }
    assert later["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert later["Attributes"]["ApproximateNumberOfMessages"] == "0"


@pytest.mark.usefixtures("patched")
def test_a_long_poll_is_answered_by_a_send_that_comes_during_it(sqs: Any) -> None:
    url, _ = _queues(sqs)
    got: list[Any] = []
    waiting = threading.Thread(
        target=lambda: got.extend(
            sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages", [])
        )
    )
    waiting.start()
    _send(sqs, url, "late", "group-1")
    waiting.join(30)

    assert [m["Body"] for m in got] == ["late"]


def test_moto_process_serves_with_the_patches_until_its_block_ends() -> None:
    from hookline.local.services import moto_process

    with moto_process() as url:
        client = boto3.client(
            "sqs",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=NO_RETRIES,
        )
        queue_url, _ = _queues(client)
        _send(client, queue_url, "event", "group-1")
        assert [m["Body"] for m in client.receive_message(QueueUrl=queue_url)["Messages"]] == [
            "event"
        ]
    with pytest.raises(Exception, match="Could not connect"):
        client.list_queues()


def _receive_one(sqs: Any, url: str, body: str, group: str) -> str:
    sqs.send_message(
        QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body
    )
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert message["Body"] == body
    handle: str = message["ReceiptHandle"]
    return handle


def test_a_delete_racing_a_move_to_the_dlq_loses_nothing_and_parks_once(
    sqs: Any, patched: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DeleteMessage racing a receive that moves a message to the DLQ, through boto3.

    moto's delete scans the queue's message list and swaps in the messages it kept;
    a receive that moves a poison message to the DLQ removes it from that list in
    place. Interleaved, the scan skips the message after the removed one (lost: an
    event in flight with a consumer is gone, never redelivered) and the swap brings
    the poison message back beside its DLQ copy (parked twice). The race is made
    deterministic: the delete is held mid-scan while the receive runs.
    """
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
