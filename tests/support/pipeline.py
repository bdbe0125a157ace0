"""The consumer driven the way Lambda's SQS event source mapping drives it.

Messages are received from the (moto) queue with their FIFO attributes, passed
to the real handler as an SQS event, and only those the handler did not report
as failed are deleted (the local stack's rule, `failed_message_ids`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hookline.envelope import Envelope
from hookline.lambda_events import sqs_event
from hookline.local.runtime import Invocation
from hookline.local.sources import failed_message_ids
from hookline.queue import EventQueue

from tests.support.lambda_context import FakeLambdaContext
from tests.support.stack import Stack

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class Pipeline:
    stack: Stack
    handler: Handler
    responses: list[dict[str, Any]] = field(default_factory=list)

    def send(self, envelopes: Iterable[Envelope]) -> None:
        queue = EventQueue(self.stack.queue_url, self.stack.sqs)
        for item in envelopes:
            queue.send(item)

    def receive(self, limit: int = 10) -> list[dict[str, Any]]:
        answer = self.stack.sqs.receive_message(
            QueueUrl=self.stack.queue_url,
            MaxNumberOfMessages=limit,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def invoke(
        self, messages: list[dict[str, Any]], timeout_seconds: float = 30.0
    ) -> dict[str, Any]:
        """One invocation; delete what succeeded, like the event source mapping.

        `timeout_seconds` is the function's timeout (template.yaml's, 30 s, by default).
        """
        event = sqs_event(messages, self.stack.queue_arn, "us-east-1")
        context = FakeLambdaContext(
            function_name="hookline-ConsumerFunction", timeout_seconds=timeout_seconds
        )
        response = self.handler(event, context)
        self.responses.append(response)
        ids = [m["MessageId"] for m in messages]
        failed = failed_message_ids(Invocation(context.aws_request_id, response), ids, True)
        done = [m for m in messages if m["MessageId"] not in failed]
        for message in done:
            self.stack.sqs.delete_message(
                QueueUrl=self.stack.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return response

    def run_once(self, limit: int = 10) -> dict[str, Any] | None:
        messages = self.receive(limit)
        return self.invoke(messages) if messages else None

    def drain(self, limit: int = 10, max_batches: int = 100) -> int:
        """Invoke until the queue has nothing visible; return the number of batches."""
        for batch in range(max_batches):
            if self.run_once(limit) is None:
                return batch
        raise AssertionError("the queue did not drain")
