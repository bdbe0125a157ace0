"""A batch from the FIFO queue: group-aware partial failures, idempotency, backoff.

Powertools' SqsFifoPartialProcessor stops a message group at its first failure
(`skip_group_on_error`), so later events about the same payment wait for the
failed one while other groups proceed. Each event passes through
`idempotent_function` (DynamoDB) before the ledger; the ledger alone already
guarantees exactly-once, so an idempotency-store outage degrades to ledger-only
dedup instead of blocking traffic.

A failed message's visibility timeout is set from its receive count: transient
failures back off exponentially; an event's own (permanent) failures come back
after 10 s, then 20 s, and the applier parks the event at the third
(MAX_PERMANENT_FAILURES), so it stops blocking its group within about 30 s.

Each record starts only if enough of the invocation is left (`Deadline`); one
that cannot start, or whose provider call no longer fits, is handed back at
once and never counts as a failure.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from hookline.consumer.apply import Applier
from hookline.database import describe
from hookline.deadline import Deadline
from hookline.envelope import Envelope
from hookline.errors import HooklineError, MalformedEvent, OutOfTime
from hookline.handlers import Outcome
from hookline.ledger import LedgerStatus
from hookline.metric_names import Metric
from hookline.observability import count, gauge, logger, metrics
from hookline.queue import EventQueue

# Longer than the longest provider retry window (Stripe retries for 3 days).
IDEMPOTENCY_EXPIRY_SECONDS = 4 * 24 * 3600

OUTCOME_METRICS = {
    LedgerStatus.APPLIED: Metric.EVENTS_APPLIED,
    LedgerStatus.STALE: Metric.EVENTS_STALE,
    LedgerStatus.IGNORED: Metric.EVENTS_IGNORED,
    LedgerStatus.ORPHANED: Metric.EVENTS_ORPHANED,
    LedgerStatus.PARKED: Metric.EVENTS_PARKED,
}


def is_transient(error: Exception) -> bool:
    """A dependency's fault (hookline.errors' table), or the same event in flight in
    another invocation (Powertools' idempotency): retry later, never the event's own."""
    if isinstance(error, IdempotencyAlreadyInProgressError):
        return True
    return isinstance(error, HooklineError) and error.transient


# Kept back from the Lambda timeout to answer and set retry delays.
FINISH_RESERVE_SECONDS = 2.0
# An event starts only with this much left: two idempotency-store calls (at most
# 4 s each), the database apply (cancelled at the deadline) and a provider call
# trimmed to what remains.
START_SECONDS = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: int = 30
    max_seconds: int = 900
    # The event's own failures come back soon, not at once: a provider's API
    # may not show a resource for a few seconds (eventual consistency), and the
    # event is parked on its third failure, about 30 s after its first.
    permanent_seconds: int = 10

    def delay(self, receive_count: int, *, transient: bool) -> int:
        """Seconds until SQS delivers a failed message again."""
        base = self.base_seconds if transient else self.permanent_seconds
        return min(self.max_seconds, base << max(0, receive_count - 1))


@dataclass
class _RetryDelays:
    """Seconds until redelivery, per failed message and per group that failed first."""

    by_message: dict[str, int] = field(default_factory=dict)
    by_group: dict[str, int] = field(default_factory=dict)


def _mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    # Called by Powertools only when it answers from the idempotency store.
    return {**response, "duplicate": True} if isinstance(response, dict) else response


@dataclass
class _Attempt:
    """What applying one record did, kept in case the idempotency store fails around it."""

    result: dict[str, Any] | None = None
    error: Exception | None = None


class Consumer:
    def __init__(
        self,
        applier: Applier,
        persistence: BasePersistenceLayer,
        queue: EventQueue,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._applier = applier
        self._queue = queue
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._config = IdempotencyConfig(
            event_key_jmespath="[provider, event_id]",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS,
            response_hook=_mark_duplicate,
        )
        self._apply_once = idempotent_function(
            data_keyword_argument="envelope",
            persistence_store=persistence,
            config=self._config,
        )(self._apply)
        self._processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        # Every record failing is still a partial answer: each gets its own backoff.
        self._processor.raise_on_entire_batch_failure = False

    def handle(self, event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
        """Process an SQS event; return the batchItemFailures answer."""
        if context is not None:
            self._config.register_lambda_context(context)
        delays = _RetryDelays()
        self._applier.start_batch()
        deadline = Deadline.of(context, reserve_seconds=FINISH_RESERVE_SECONDS)
        # Powertools passes the record as the keyword `record`.
        handler = functools.partial(self._record, delays=delays, deadline=deadline)
        with (
            self._applier.cancelled_at(deadline),
            self._processor(event["Records"], handler, context),
        ):
            self._processor.process()
        self._back_off(delays)
        return dict(self._processor.response())

    def _record(
        self, record: SQSRecord, delays: _RetryDelays, deadline: Deadline
    ) -> dict[str, Any]:
        try:
            envelope = Envelope.model_validate_json(record.body)
        except ValidationError:
            self._failed(record, delays, MalformedEvent("the message is not an envelope"), None)
            raise MalformedEvent("the message is not an envelope") from None
        attempt = _Attempt()
        try:
            deadline.require(START_SECONDS, "start this event")
            try:
                result: dict[str, Any] = self._apply_once(
                    envelope=envelope, deadline=deadline, attempt=attempt
                )
            except IdempotencyPersistenceLayerError as error:
                # The ledger still dedups: carry on without the idempotency store.
                logger.warning(
                    "idempotency store unavailable, relying on the ledger",
                    extra={"error": describe(error)},
                )
                count(Metric.IDEMPOTENCY_UNAVAILABLE)
                result = self._after_store_failure(envelope, deadline, attempt)
        except Exception as error:
            self._failed(record, delays, error, envelope)
            raise
        self._observe(envelope, Outcome.from_dict(result))
        return result

    def _after_store_failure(
        self, envelope: Envelope, deadline: Deadline, attempt: _Attempt
    ) -> dict[str, Any]:
        """The store failed before or after the apply: never apply (or count) twice."""
        if attempt.error is not None:
            raise attempt.error
        if attempt.result is not None:
            return attempt.result  # applied and committed; only saving the record failed
        return self._apply(envelope=envelope, deadline=deadline, attempt=attempt)

    def _apply(
        self, *, envelope: Envelope, deadline: Deadline, attempt: _Attempt
    ) -> dict[str, Any]:
        try:
            attempt.result = self._applier.apply(envelope, deadline).as_dict()
        except Exception as error:
            attempt.error = error
            raise
        return attempt.result

    def _observe(self, envelope: Envelope, outcome: Outcome) -> None:
        fields = {
            "provider": envelope.provider,
            "event_id": envelope.event_id,
            "event_type": envelope.event_type,
            "status": outcome.status.value,
        }
        if outcome.duplicate:
            count(Metric.EVENTS_DUPLICATE)
            logger.info("event already handled", extra=fields)
            return
        count(OUTCOME_METRICS.get(outcome.status, Metric.EVENTS_APPLIED))
        latency = (self._clock() - envelope.received_at).total_seconds() * 1000
        metrics.add_metric(
            name=Metric.END_TO_END_LATENCY, unit=MetricUnit.Milliseconds, value=latency
        )
        logger.info(
            "event handled",
            extra={**fields, "order_id": outcome.order_id, "order_status": outcome.order_status},
        )

    def _failed(
        self,
        record: SQSRecord,
        delays: _RetryDelays,
        error: Exception,
        envelope: Envelope | None,
    ) -> None:
        receives = int(record.attributes.approximate_receive_count or 1)
        group = record.attributes.message_group_id
        if isinstance(error, OutOfTime):
            # Not a failure: it comes straight back to an invocation with time to spare.
            delays.by_message[record.message_id] = 0
            if group is not None:
                delays.by_group.setdefault(group, 0)
            count(Metric.EVENTS_HANDED_BACK)
            logger.info(
                "event handed back: not enough time left",
                extra={
                    "message_id": record.message_id,
                    "event_id": envelope.event_id if envelope else None,
                    "reason": str(error),
                },
            )
            return
        transient = is_transient(error)
        # A message that is not an envelope never becomes one: no reason to wait
        # before SQS takes it to the DLQ, where the reconciler parks it.
        delay = 0 if envelope is None else self._retry.delay(receives, transient=transient)
        delays.by_message[record.message_id] = delay
        if group is not None:
            delays.by_group.setdefault(group, delay)
        count(Metric.EVENTS_FAILED, kind="transient" if transient else "permanent")
        if transient and envelope is not None:
            # Waiting on a dependency: how long it has waited is what the
            # EventsWaitingAlarm watches (redrives reset the queue's own age).
            waited = (self._clock() - envelope.received_at).total_seconds()
            gauge(Metric.WAITING_EVENT_AGE, max(0.0, waited), unit=MetricUnit.Seconds)
        if transient and isinstance(error, HooklineError) and error.metric is not None:
            # The dependency that failed, as the errors table names it: DatabaseFailures
            # is what the reconciler's circuit breaker reads (reconcile/breaker.py).
            count(error.metric)
        logger.error(
            "event failed",
            extra={
                "message_id": record.message_id,
                "provider": envelope.provider if envelope else None,
                "event_id": envelope.event_id if envelope else None,
                "event_type": envelope.event_type if envelope else None,
                "error": describe(error),
                "transient": transient,
                "receive_count": receives,
                "retry_in_seconds": delay,
            },
        )

    def _back_off(self, delays: _RetryDelays) -> None:
        """Set each failed message's visibility: its own delay, or its failed group's."""
        entries = []
        for message in self._processor.fail_messages:
            assert isinstance(message, SQSRecord)
            delay = delays.by_message.get(message.message_id)
            if delay is None:  # skipped behind its group's failure: come back with it
                delay = delays.by_group.get(message.attributes.message_group_id or "", 0)
            entries.append((message.message_id, message.receipt_handle, delay))
        if entries:
            self._queue.retry_later(entries)
