"""Dead letters: back to EventsQueue, parked, or dropped as a dead copy.

What happens to a letter is a verdict about the event itself (`Judge`, from
its ledger row): a letter that is not an envelope is parked; a dead copy of an
event already handled is dropped; an event whose own attempts failed (the
last failure its own fault) is re-sent at most MAX_REDRIVES times, then parked.
Anything else (it waited out a database or provider outage, or sat behind a
failing event in its group) is re-sent, however many times that takes.

A message leaves the DLQ only after it is re-sent, parked or found handled:
the delete comes last. A crash between the two leaves it in the DLQ to be
handled again. The re-send reuses the redrive's deduplication id, so SQS drops
the second copy within its 5-minute window. After that the ledger makes the
duplicate a no-op. One letter that cannot be handled is logged, counted and
left in the DLQ; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from hookline.database import describe
from hookline.deadline import Deadline
from hookline.envelope import Envelope
from hookline.errors import QueueUnavailable
from hookline.metric_names import Metric
from hookline.observability import count, gauge, logger

# Carried with the message: how many times the reconciler has re-sent it.
REDRIVES_ATTRIBUTE = "hookline-redrives"
PARK_REASON = "redrive_limit"
MALFORMED_REASON = "malformed_message"
# While a message is handled, the DLQ hides it from another reconciler run.
HANDLING_SECONDS = 120
# Stop receiving letters with less than this left in the run.
MARGIN_SECONDS = 5.0


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


class Verdict(StrEnum):
    REDRIVE = "redriven"
    PARK = "parked"
    # A dead copy of an event the ledger already handled: nothing to do.
    DROP = "dropped"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str | None = None


# Judges one dead letter (from its ledger row).
Judge = Callable[[DeadLetter], Judgement]
# Parks one dead letter: (letter, reason). Returns False if its ledger row turned
# out handled meanwhile (then it is a dead copy). Raises if the park did not commit.
Park = Callable[[DeadLetter, str], bool]


@dataclass(frozen=True)
class RedriveResult:
    redriven: int = 0
    parked: int = 0
    dropped: int = 0


class Redriver:
    def __init__(self, sqs: Any, queue_url: str, dlq_url: str, judge: Judge, park: Park) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.judge = judge
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

    def run(self, limit: int = 100, until: Deadline | None = None) -> RedriveResult:
        """Handle up to `limit` dead letters. Raises QueueUnavailable if SQS cannot be read."""
        until = until or Deadline.never()
        tally = dict.fromkeys(Verdict, 0)
        seen = 0
        while seen < limit and until.remaining() > MARGIN_SECONDS:
            try:
                messages = self._receive()
            except (BotoCoreError, ClientError) as error:
                raise QueueUnavailable(f"redrive stopped: {type(error).__name__}") from error
            if not messages:
                break
            for message in messages:
                seen += 1
                letter = DeadLetter.from_message(message)
                try:
                    verdict = self._handle(letter)
                except Exception as error:  # noqa: BLE001 - one bad letter must not stop the run
                    # Left in the DLQ (hidden until HANDLING_SECONDS pass); the rest go on.
                    count(Metric.DEAD_LETTERS_FAILED)
                    logger.error(
                        "dead letter could not be handled",
                        extra={**_fields(letter), "error": describe(error)},
                    )
                    continue
                tally[verdict] += 1
        return RedriveResult(tally[Verdict.REDRIVE], tally[Verdict.PARK], tally[Verdict.DROP])

    def _handle(self, letter: DeadLetter) -> Verdict:
        judgement = self.judge(letter)
        verdict = judgement.verdict
        if verdict is Verdict.PARK:
            assert judgement.reason is not None
            if not self.park(letter, judgement.reason):
                verdict = Verdict.DROP
        elif verdict is Verdict.REDRIVE:
            self._resend(letter)
            if letter.envelope is not None:
                waited = (datetime.now(UTC) - letter.envelope.received_at).total_seconds()
                gauge(Metric.WAITING_EVENT_AGE, max(0.0, waited), unit=MetricUnit.Seconds)
        self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=letter.receipt_handle)
        if verdict is Verdict.DROP:
            count(Metric.DEAD_LETTERS_DROPPED)
        elif verdict is Verdict.PARK and judgement.reason is not None:
            count(Metric.EVENTS_PARKED, reason=judgement.reason)
        logger.info(
            "dead letter handled",
            extra={**_fields(letter), "outcome": verdict.value, "reason": judgement.reason},
        )
        return verdict


def _fields(letter: DeadLetter) -> dict[str, Any]:
    return {
        "message_id": letter.message_id,
        "provider": letter.envelope.provider if letter.envelope else None,
        "event_id": letter.envelope.event_id if letter.envelope else None,
        "redrives": letter.redrives,
    }
