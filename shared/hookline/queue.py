"""Sending envelopes to the FIFO events queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from hookline.envelope import Envelope
from hookline.errors import PayloadTooLarge, QueueUnavailable
from hookline.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# SQS's largest message; the envelope adds JSON escaping and fields to the body.
MAX_MESSAGE_BYTES = 1_048_576


class EventQueue:
    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self.queue_url = queue_url
        self._client = client

    def send(self, envelope: Envelope) -> str:
        """Enqueue; return the SQS message id. Raises QueueUnavailable on any failure.

        Only a successful return means SQS stored the message durably.
        """
        body = envelope.to_message_body()
        if len(body.encode("utf-8")) > MAX_MESSAGE_BYTES:
            raise PayloadTooLarge("the event is too large to queue")
        try:
            answer = self._client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=body,
                MessageDeduplicationId=envelope.deduplication_id,
                MessageGroupId=envelope.group_id,
            )
        except (BotoCoreError, ClientError) as error:
            raise QueueUnavailable(
                f"SQS did not accept the event: {type(error).__name__}"
            ) from error
        return answer["MessageId"]

    def check(self) -> None:
        """Raise QueueUnavailable unless the queue answers (for /health)."""
        try:
            self._client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        except (BotoCoreError, ClientError) as error:
            raise QueueUnavailable(f"queue unreachable: {type(error).__name__}") from error

    def retry_later(self, messages: Sequence[tuple[str, str, int]]) -> None:
        """Set (message id, receipt handle, seconds) visibility timeouts, ten at a time.

        Best effort: if it fails, the messages return after the queue's own timeout.
        """
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            try:
                answer = self._client.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(index), "ReceiptHandle": receipt, "VisibilityTimeout": seconds}
                        for index, (_, receipt, seconds) in enumerate(chunk)
                    ],
                )
            except (BotoCoreError, ClientError) as error:
                logger.warning("could not set retry delays", extra={"error": type(error).__name__})
                continue
            if answer.get("Failed"):
                failed = len(answer["Failed"])
                logger.warning("some retry delays were not set", extra={"failed": failed})
