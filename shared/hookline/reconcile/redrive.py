"""Dead letters back to EventsQueue, at most MAX_REDRIVES times, then parked.

A message leaves the DLQ only after it is re-sent or parked: the delete comes
last. A crash between the two leaves it in the DLQ to be handled again. The
re-send reuses the redrive's deduplication id, so SQS drops the second copy
within its 5-minute window. After that the ledger makes the duplicate a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from hookline.envelope import Envelope
from hookline.errors import QueueUnavailable
from hookline.observability import logger

# Carried with the message: how many times the reconciler has re-sent it.
REDRIVES_ATTRIBUTE = "hookline-redrives"
PARK_REASON = "redrive_limit"
MALFORMED_REASON = "malformed_message"
# While a message is handled, the DLQ hides it from another reconciler run.
HANDLING_SECONDS = 120


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receipt_handle: str
    body: str
    redrives: int
    envelope: Envelope | None

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> DeadLetter:
        attribute = message.get("MessageAttributes", {}).get(REDRIVES_ATTRIBUTE, {})
        try:
            redrives = int(attribute.get("StringValue", "0"))
        except ValueError:
            redrives = 0
        try:
            envelope: Envelope | None = Envelope.model_validate_json(message["Body"])
        except ValidationError:
            envelope = None
        return cls(
            message["MessageId"], message["ReceiptHandle"], message["Body"], redrives, envelope
        )


# Parks one dead letter: (letter, reason). Raises if the park did not commit.
Park = Callable[[DeadLetter, str], None]


@dataclass(frozen=True)
class RedriveResult:
    redriven: int = 0
    parked: int = 0


class Redriver:
    def __init__(
        self, sqs: Any, queue_url: str, dlq_url: str, max_redrives: int, park: Park
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.max_redrives = max_redrives
        self.park = park

    def _receive(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.dlq_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=HANDLING_SECONDS,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def _resend(self, letter: DeadLetter) -> None:
        assert letter.envelope is not None
        count = letter.redrives + 1
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=letter.body,
            MessageGroupId=letter.envelope.group_id,
            # New per redrive (the original id would be dropped as a duplicate),
            # the same for a retry of this redrive.
            MessageDeduplicationId=f"{letter.envelope.deduplication_id}-r{count}",
            MessageAttributes={
                REDRIVES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(count)}
            },
        )

    def run(self, limit: int = 100) -> RedriveResult:
        """Handle up to `limit` dead letters. Raises QueueUnavailable if SQS fails."""
        redriven = parked = 0
        try:
            while redriven + parked < limit:
                messages = self._receive()
                if not messages:
                    break
                for message in messages:
                    letter = DeadLetter.from_message(message)
                    if letter.envelope is None:
                        outcome = MALFORMED_REASON
                    elif letter.redrives >= self.max_redrives:
                        outcome = PARK_REASON
                    else:
                        outcome = "redriven"
                    if outcome == "redriven":
                        self._resend(letter)
                        redriven += 1
                    else:
                        self.park(letter, outcome)
                        parked += 1
                    self.sqs.delete_message(
                        QueueUrl=self.dlq_url, ReceiptHandle=letter.receipt_handle
                    )
                    logger.info(
                        "dead letter handled",
                        extra={
                            "message_id": letter.message_id,
                            "provider": letter.envelope.provider if letter.envelope else None,
                            "event_id": letter.envelope.event_id if letter.envelope else None,
                            "redrives": letter.redrives,
                            "outcome": outcome,
                        },
                    )
        except (BotoCoreError, ClientError) as error:
            raise QueueUnavailable(f"redrive stopped: {type(error).__name__}") from error
        return RedriveResult(redriven, parked)


def payload_of(letter: DeadLetter) -> Any:
    """What parked_events keeps when the ledger has no row: the event body, else the message."""
    if letter.envelope is not None:
        try:
            return json.loads(letter.envelope.body)
        except ValueError:
            return {"body": letter.envelope.body}
    return {"message": letter.body}
