"""Applying one event: one transaction holding the ledger row and the domain change.

How an attempt ends decides what happens next, and whose fault it was:
- applied (or stale, ignored, orphaned): committed with its ledger row;
- a dependency failed (PostgreSQL, a provider API): `ServiceUnavailable`, try
  again later; it never counts against the event;
- a shop's order callback raised (or ended the transaction, or moved the
  search_path): `CallbackFailed`, a `ServiceUnavailable` too: the whole event
  rolls back and is retried until the shop's code works; the event is fine, so
  it never counts against it and is never parked for it;
- out of time: `OutOfTime`, handed back untouched;
- the event itself failed (malformed, unknown to the provider, a handler bug):
  recorded as one of its own failures, and once it has failed
  `max_permanent_failures` times it is parked, here, with its reason, so it
  stops blocking the events behind it in its FIFO group.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from hookline.database import QUERY_CANCELED, Database, StatementQueue, describe, is_transient
from hookline.deadline import Deadline
from hookline.envelope import RECOVERED_HEADER, Envelope
from hookline.errors import DatabaseUnavailable, HooklineError, MalformedEvent, OutOfTime
from hookline.handlers import (
    ApiReader,
    Event,
    Handler,
    HandlerContext,
    HandlerRegistry,
    Outcome,
)
from hookline.handlers import registry as default_registry
from hookline.ledger import (
    PERMANENT_FAILURE_REASON,
    FailureKind,
    LedgerStatus,
    finish,
    park,
    record_failure,
    send_claim,
)
from hookline.locks import RowLocks
from hookline.metric_names import Metric
from hookline.observability import count, logger
from hookline.orphans import ORPHAN_REASON
from hookline.outbox import Cause, Outbox
from hookline.payloads import parse, store
from hookline.payments import BatchedLocks, report_order_changes


class Applier:
    def __init__(
        self,
        database: Database,
        apis: ApiReader,
        *,
        registry: HandlerRegistry = default_registry,
        orphan_deadline: timedelta = timedelta(hours=72),
        max_permanent_failures: int = 3,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._apis = apis
        self._registry = registry
        self._orphan_deadline = orphan_deadline
        self._max_permanent_failures = max_permanent_failures
        self._clock = clock

    def start_batch(self) -> None:
        """A new invocation: try the database again even if it just failed."""
        self._database.clear_failure()

    @contextmanager
    def cancelled_at(self, deadline: Deadline) -> Iterator[None]:
        """Cancel whatever statement still runs at `deadline` (a lock wait, a slow query):
        the event it belongs to is handed back, and the invocation ends in time."""
        if deadline.unbounded:
            yield
            return
        timer = threading.Timer(max(0.0, deadline.remaining()), self._database.cancel)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def apply(self, envelope: Envelope, deadline: Deadline | None = None) -> Outcome:
        """Apply `envelope` exactly once. Raises on failure, after recording the error.

        A transient error (DatabaseUnavailable, any error the errors table calls
        transient) means "try again later", OutOfTime "hand it back"; anything
        else means the event cannot apply as it is (returned as `parked` once that
        has happened often enough).
        """
        connection = self._database.connection()
        parsed: Any = None
        # Opened and ended by hand: its BEGIN travels with the first statements and
        # its COMMIT with the last (psycopg's context manager sends each on its own).
        transaction = psycopg.Transaction(connection)
        try:
            try:
                parsed = parse(envelope.body)
                handler = self._registry.get(envelope.provider, envelope.event_type)
                locks, queue = self._locks(connection, handler)
                # Round trip 1: BEGIN, the ledger row, and the session's facts.
                queue.call(transaction.__enter__)
                claiming = send_claim(queue, envelope, store(envelope.body, parsed))
                outbox = Outbox(locks, queue)
                claimed = claiming.result()
                if not claimed.run:
                    self._commit(transaction, queue)
                    return Outcome(claimed.existing or LedgerStatus.APPLIED, duplicate=True)
                # Round trip 2 (a built-in handler): the payment and order locks and reads.
                outcome = self._run_handler(handler, locks, envelope, parsed, deadline)
                if not isinstance(locks, BatchedLocks):
                    # A team's handler is done: the transaction and session must still be
                    # hookline's (SessionChanged: the event's own failure).
                    outbox.after_handler()
                finish(queue, envelope, outcome.status, order_id=outcome.order_id)
                if outcome.status is LedgerStatus.ORPHANED and self._past_deadline(envelope):
                    queue.flush()
                    park(
                        connection,
                        envelope.provider,
                        envelope.event_id,
                        ORPHAN_REASON,
                        f"order {outcome.order_id} unknown after the deadline",
                        orphan=True,
                    )
                    outcome = replace(outcome, status=LedgerStatus.PARKED)
                # Last before commit: the shop's callbacks see every write, and theirs
                # commit with them (or CallbackFailed rolls everything back).
                outbox.publish(
                    Cause(envelope.provider, envelope.event_id, envelope.event_type),
                    self._registry.order_callbacks,
                    deadline,
                )
                # Round trip 3: the writes still queued, the ledger row's end, NOTIFY,
                # COMMIT, and (with a team's code loaded) the session's fingerprint.
                queue.call(lambda: transaction.__exit__(None, None, None))
                session_check = self._database.session_check(queue)
                queue.flush()
            except BaseException as error:
                _roll_back(connection, transaction, error)
                raise
        except psycopg.Error as error:
            if connection.closed or connection.broken:
                self._database.discard()
            if error.sqlstate == QUERY_CANCELED and deadline and deadline.remaining() <= 0:
                raise OutOfTime("the invocation's time ran out in the database") from error
            if is_transient(error):
                raise DatabaseUnavailable(f"PostgreSQL failed: {describe(error)}") from error
            return self._failed_on_its_own(envelope, parsed, error)
        except OutOfTime:
            raise
        except HooklineError as error:
            if not error.transient:
                return self._failed_on_its_own(envelope, parsed, error)
            # A dependency's fault (the errors table): recorded, never the event's own.
            self._record_failure(envelope, parsed, error, FailureKind.TRANSIENT)
            raise
        except Exception as error:  # noqa: BLE001 - any other error is the event's own
            return self._failed_on_its_own(envelope, parsed, error)
        # Committed: a SET a team's handler or callback left must not reach the next event.
        self._database.verify_session(session_check)
        # Now, and only now, the transitions it made are facts to report.
        report_order_changes(locks.order_changes)
        if envelope.headers.get(RECOVERED_HEADER) == "true":
            # This copy came from the provider's event list and applied first:
            # its webhook never arrived (docs/operations.md, RecoveredEventsAlarm).
            count(Metric.EVENTS_RECOVERED, provider=envelope.provider)
            logger.warning(
                "missed event applied from recovery: webhooks are being lost upstream",
                extra={"provider": envelope.provider, "event_id": envelope.event_id},
            )
        return outcome

    def _locks(
        self, connection: psycopg.Connection[Any], handler: Handler | None
    ) -> tuple[RowLocks, StatementQueue]:
        """Batched locks for hookline's own handlers (their statements and the applier's
        share one queue); plain ones, each statement sent when asked, for a team's."""
        if handler is None or self._registry.is_builtin(handler):
            batched = BatchedLocks(connection)
            return batched, batched.queue
        return RowLocks(connection), StatementQueue(connection)

    @staticmethod
    def _commit(transaction: psycopg.Transaction, queue: StatementQueue) -> None:
        queue.call(lambda: transaction.__exit__(None, None, None))
        queue.flush()

    def _run_handler(
        self,
        handler: Handler | None,
        locks: RowLocks,
        envelope: Envelope,
        payload: Any,
        deadline: Deadline | None,
    ) -> Outcome:
        if handler is None:
            return Outcome(LedgerStatus.IGNORED)
        if not isinstance(payload, dict):
            raise MalformedEvent("the event body is not a JSON object")
        context = HandlerContext(locks, self._apis, deadline or Deadline.never())
        return handler(context, Event(envelope, payload))

    def _failed_on_its_own(self, envelope: Envelope, parsed: Any, error: Exception) -> Outcome:
        """Record the event's own failure: `parked` once there have been enough, else raise."""
        if not self._record_failure(envelope, parsed, error, FailureKind.PERMANENT):
            raise error
        logger.warning(
            "event parked: it failed on its own every attempt",
            extra={
                "provider": envelope.provider,
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "error": describe(error),
            },
        )
        return Outcome(LedgerStatus.PARKED)

    def _past_deadline(self, envelope: Envelope) -> bool:
        happened = envelope.occurred_at or envelope.received_at
        return happened < self._clock() - self._orphan_deadline

    def _record_failure(
        self, envelope: Envelope, parsed: Any, error: Exception, kind: FailureKind
    ) -> bool:
        """Record the failed attempt; park the event once its own failures reach the limit.

        Returns whether it parked. Both happen in one transaction, or neither. If the
        payload itself cannot be stored, the failure is recorded with the body alone,
        so an event's own failures always count and it can always be parked.
        """
        # The body as parsed, then, if PostgreSQL refuses that, the body alone.
        for stored in (store(envelope.body, parsed), store(envelope.body, None)):
            try:
                # A fresh session if the attempt's was closed (one a callback or a
                # handler tampered with is never reused: hookline.outbox).
                connection = self._database.connection()
            except DatabaseUnavailable as unavailable:
                logger.warning("could not record the failure", extra={"error": str(unavailable)})
                return False
            try:
                with connection.transaction():
                    failures = record_failure(connection, envelope, stored, describe(error), kind)
                    if (
                        kind is FailureKind.PERMANENT
                        and failures is not None
                        and failures >= self._max_permanent_failures
                    ):
                        return park(
                            connection,
                            envelope.provider,
                            envelope.event_id,
                            PERMANENT_FAILURE_REASON,
                            describe(error),
                        )
                return False
            except psycopg.Error as record_error:
                if connection.closed or connection.broken:
                    self._database.discard()
                # The original error is what matters; SQS will deliver the event again.
                logger.warning(
                    "could not record the failure", extra={"error": describe(record_error)}
                )
                if is_transient(record_error):
                    return False
        return False


def _roll_back(
    connection: psycopg.Connection[Any], transaction: psycopg.Transaction, error: BaseException
) -> None:
    """End the event's transaction after `error`, wherever it stopped.

    Before its COMMIT was queued, psycopg rolls it back (or, on a broken
    connection, logs and gives up, as its context manager does). After, the
    pipeline that carried the COMMIT failed first: the server's transaction is
    still open and aborted, so it is rolled back here.
    """
    if transaction.status is psycopg.Transaction.Status.ACTIVE:
        transaction.__exit__(type(error), error, error.__traceback__)
    elif not (connection.closed or connection.broken) and (
        connection.info.transaction_status is not TransactionStatus.IDLE
    ):
        with contextlib.suppress(psycopg.Error):
            connection.rollback()
