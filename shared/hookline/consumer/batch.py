"""A batch from the FIFO queue: group-aware partial failures, idempotency, backoff.

Powertools' SqsFifoPartialProcessor stops a message group at its first failure
(`skip_group_on_error`), so later events about the same payment wait for the
failed one while other groups proceed. Each event passes through
`idempotent_function` (DynamoDB) before the ledger; the ledger alone already
guarantees exactly-once, so an idempotency-store outage degrades to ledger-only
dedup instead of blocking traffic.

A failed message's visibility timeout is set from its receive count: transient
failures back off exponentially, permanent ones come back at once and reach the
DLQ after maxReceiveCount receives instead of blocking their group for hours.
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
from hookline.envelope import Envelope
from hookline.errors import DatabaseUnavailable, MalformedEvent, ServiceUnavailable
from hookline.handlers import Outcome
from hookline.ledger import LedgerStatus
from hookline.observability import DATABASE_FAILURES_METRIC, count, logger, metrics
from hookline.queue import EventQueue

# Longer than the longest provider retry window (Stripe retries for 3 days).
IDEMPOTENCY_EXPIRY_SECONDS = 4 * 24 * 3600

OUTCOME_METRICS = {
    LedgerStatus.APPLIED: "EventsApplied",
    LedgerStatus.STALE: "EventsStale",
    LedgerStatus.IGNORED: "EventsIgnored",
    LedgerStatus.ORPHANED: "EventsOrphaned",
    LedgerStatus.PARKED: "EventsParked",
}

TRANSIENT_ERRORS = (ServiceUnavailable, IdempotencyAlreadyInProgressError)


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: int = 30
    max_seconds: int = 900

    def delay(self, receive_count: int, *, transient: bool) -> int:
        """Seconds until SQS delivers a failed message again."""
        if not transient:
            return 0
        return min(self.max_seconds, self.base_seconds << max(0, receive_count - 1))


@dataclass
class _RetryDelays:
    """Seconds until redelivery, per failed message and per group that failed first."""

    by_message: dict[str, int] = field(default_factory=dict)
    by_group: dict[str, int] = field(default_factory=dict)


def _mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    # Called by Powertools only when it answers from the idempotency store.
    return {**response, "duplicate": True} if isinstance(response, dict) else response


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
        # Powertools passes the record as the keyword `record`.
        handler = functools.partial(self._record, delays=delays)
        with self._processor(event["Records"], handler, context):
            self._processor.process()
        self._back_off(delays)
        return dict(self._processor.response())

    def _record(self, record: SQSRecord, delays: _RetryDelays) -> dict[str, Any]:
        try:
            envelope = Envelope.model_validate_json(record.body)
        except ValidationError:
            self._failed(record, delays, MalformedEvent("the message is not an envelope"), None)
            raise MalformedEvent("the message is not an envelope") from None
        result: dict[str, Any]
        try:
            try:
                result = self._apply_once(envelope=envelope)
            except IdempotencyPersistenceLayerError as error:
                # The ledger still dedups: carry on without the idempotency store.
                logger.warning(
                    "idempotency store unavailable, relying on the ledger",
                    extra={"error": describe(error)},
                )
                count("IdempotencyUnavailable")
                result = self._apply(envelope=envelope)
        except Exception as error:
            self._failed(record, delays, error, envelope)
            raise
        self._observe(envelope, Outcome.from_dict(result))
        return result

    def _apply(self, *, envelope: Envelope) -> dict[str, Any]:
        return self._applier.apply(envelope).as_dict()

    def _observe(self, envelope: Envelope, outcome: Outcome) -> None:
        fields = {
            "provider": envelope.provider,
            "event_id": envelope.event_id,
            "event_type": envelope.event_type,
            "status": outcome.status.value,
        }
        if outcome.duplicate:
            count("EventsDuplicate")
            logger.info("event already handled", extra=fields)
            return
        count(OUTCOME_METRICS.get(outcome.status, "EventsApplied"))
        if outcome.amount_mismatch:
            count("AmountMismatches")
            logger.warning("order amount mismatch", extra={**fields, "order_id": outcome.order_id})
        latency = (self._clock() - envelope.received_at).total_seconds() * 1000
        metrics.add_metric(name="EndToEndLatency", unit=MetricUnit.Milliseconds, value=latency)
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
        transient = isinstance(error, TRANSIENT_ERRORS)
        receives = int(record.attributes.approximate_receive_count or 1)
        delay = self._retry.delay(receives, transient=transient)
        delays.by_message[record.message_id] = delay
        group = record.attributes.message_group_id
        if group is not None:
            delays.by_group.setdefault(group, delay)
        count("EventsFailed", kind="transient" if transient else "permanent")
        if isinstance(error, DatabaseUnavailable):
            # The reconciler's circuit breaker reads this (reconcile/breaker.py).
            count(DATABASE_FAILURES_METRIC)
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
