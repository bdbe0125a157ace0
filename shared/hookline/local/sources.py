"""Event sources: the SQS event source mapping and EventBridge schedules.

The poller does what Lambda's mapping does for a FIFO queue: receive up to the
batch size with every system attribute, invoke the function, delete only the
messages it did not report as failed (all of them on a function error), and
leave redelivery and the move to the dead-letter queue to SQS itself.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hookline.lambda_events import sqs_event
from hookline.local.runtime import ACCOUNT_ID, Invocation
from hookline.local.wiring import QueueSource, Schedule

Invoke = Callable[[str, dict[str, Any]], Invocation]
Report = Callable[[str, str], None]

# Short polls keep shutdown prompt; an idle poller still costs little.
WAIT_SECONDS = 1
# After a batch of half BatchSize or less, a poller lets messages gather this long
# before its next receive. Without it, under a steady load every message came alone: a
# ReceiveMessage, an invocation and a DeleteMessageBatch each (most of the local
# stack's CPU at 60 deliveries/s). A message into an idle queue waits for nothing.
GATHER_SECONDS = 0.1


def failed_message_ids(
    invocation: Invocation, message_ids: list[str], reports_item_failures: bool
) -> set[str]:
    """Which messages stay on the queue after an invocation, by Lambda's rules."""
    if invocation.failed:
        return set(message_ids)
    if not reports_item_failures:
        return set()
    result = invocation.result
    if result is None:
        return set()
    failures = result.get("batchItemFailures") if isinstance(result, dict) else None
    if not isinstance(failures, list):
        return set(message_ids)
    named = {item.get("itemIdentifier") for item in failures if isinstance(item, dict)}
    # An empty, unknown or missing identifier fails the whole batch, as in Lambda.
    if not named <= set(message_ids) or None in named or "" in named:
        return set(message_ids)
    return {str(item) for item in named}


class QueuePoller:
    def __init__(
        self,
        source: QueueSource,
        queue_url: str,
        queue_arn: str,
        sqs: Any,
        invoke: Invoke,
        report: Report,
        region: str,
    ) -> None:
        self.source = source
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.sqs = sqs
        self.invoke = invoke
        self.report = report
        self.region = region
        # Lambda's mapping state: disabled, the pollers stop receiving (the breaker's switch).
        self.uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source.function}/{queue_arn}"))
        self.enabled = threading.Event()
        self.enabled.set()
        self._stop = threading.Event()
        # Pollers receiving now: one more for each full batch, up to MaximumConcurrency,
        # one fewer when the newest finds next to nothing (Lambda scales its pollers so).
        self._active = 1
        self._scaling = threading.Condition()
        self._threads = [
            threading.Thread(
                target=self._run, args=(n,), name=f"poller-{source.function}-{n}", daemon=True
            )
            for n in range(source.maximum_concurrency)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        with self._scaling:
            self._scaling.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def describe(self, function_arn: str) -> dict[str, Any]:
        """As Lambda's GetEventSourceMapping answers."""
        return {
            "UUID": self.uuid,
            "EventSourceArn": self.queue_arn,
            "FunctionArn": function_arn,
            "State": "Enabled" if self.enabled.is_set() else "Disabled",
            "BatchSize": self.source.batch_size,
            "FunctionResponseTypes": (
                ["ReportBatchItemFailures"] if self.source.report_batch_item_failures else []
            ),
            "ScalingConfig": {"MaximumConcurrency": self.source.maximum_concurrency},
        }

    def _run(self, number: int) -> None:
        while not self._stop.is_set():
            if not self.enabled.is_set():
                self._stop.wait(1)
                continue
            with self._scaling:
                if number >= self._active:
                    self._scaling.wait(WAIT_SECONDS)
                    continue
            try:
                received = self.poll_once()
            except (BotoCoreError, ClientError) as error:
                self.report(self.source.function, f"poll failed: {type(error).__name__}: {error}")
                self._stop.wait(2)
                continue
            except Exception as error:  # noqa: BLE001 - Lambda's mapping never stops polling
                # A poller that died would leave its queue unpolled (thread 0 is the one
                # every scale-up starts from); its messages come back after their timeout.
                self.report(self.source.function, f"poll failed: {type(error).__name__}: {error}")
                self._stop.wait(2)
                continue
            self._scale(number, received)
            if 0 < received <= self._full // 2:
                self._stop.wait(GATHER_SECONDS)

    @property
    def active(self) -> int:
        """Pollers receiving now (the rest wait for a full batch to bring them in)."""
        with self._scaling:
            return self._active

    @property
    def _full(self) -> int:
        """A full receive: the batch size, within ReceiveMessage's 10."""
        return min(self.source.batch_size, 10)

    def _scale(self, number: int, received: int) -> None:
        with self._scaling:
            if received >= self._full:
                if self._active < len(self._threads):
                    self._active += 1
                    self._scaling.notify_all()
            elif received <= self._full // 4 and number == self._active - 1 and number > 0:
                # The newest poller found next to nothing: the backlog is gone.
                self._active -= 1

    def poll_once(self) -> int:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self._full,
            WaitTimeSeconds=WAIT_SECONDS,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        invocation = self.invoke(
            self.source.function, sqs_event(messages, self.queue_arn, self.region)
        )
        ids = [m["MessageId"] for m in messages]
        failed = failed_message_ids(invocation, ids, self.source.report_batch_item_failures)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        summary = f"batch of {len(messages)}: {len(done)} done, {len(failed)} back to the queue"
        if invocation.failed and invocation.error is not None:
            summary += (
                f" ({invocation.error.get('errorType')}: {invocation.error.get('errorMessage')})"
            )
        self.report(self.source.function, summary)
        return len(messages)


def scheduled_event(schedule: Schedule, region: str, now: datetime | None = None) -> dict[str, Any]:
    """What EventBridge sends for a rule (or the rule's fixed Input)."""
    if schedule.input is not None:
        loaded: dict[str, Any] = json.loads(schedule.input)
        return loaded
    now = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [
            f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{schedule.function}-{schedule.name}"
        ],
        "detail": {},
    }


class Scheduler:
    def __init__(self, schedule: Schedule, invoke: Invoke, report: Report, region: str) -> None:
        self.schedule = schedule
        self.invoke = invoke
        self.report = report
        self.region = region
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"schedule-{schedule.function}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        # EventBridge fires the first run one interval after the rule is created.
        while not self._stop.wait(self.schedule.interval_seconds):
            invocation = self.invoke(
                self.schedule.function, scheduled_event(self.schedule, self.region)
            )
            outcome = "failed" if invocation.failed else "done"
            self.report(
                self.schedule.function, f"scheduled run ({self.schedule.expression}) {outcome}"
            )
