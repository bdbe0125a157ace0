"""Applying one event: one transaction holding the ledger row and the domain change."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from hookline.database import Connection, Database, describe
from hookline.envelope import Envelope
from hookline.errors import DatabaseUnavailable, MalformedEvent
from hookline.handlers import Event, HandlerContext, HandlerRegistry, Outcome, PaymentFetcher
from hookline.handlers import registry as default_registry
from hookline.ledger import LedgerStatus, claim, finish, park, record_failure
from hookline.observability import logger
from hookline.orphans import ORPHAN_REASON


def _payload(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise MalformedEvent("the event body is not JSON") from None


class Applier:
    def __init__(
        self,
        database: Database,
        mercadopago: PaymentFetcher,
        *,
        registry: HandlerRegistry = default_registry,
        orphan_deadline: timedelta = timedelta(hours=72),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._mercadopago = mercadopago
        self._registry = registry
        self._orphan_deadline = orphan_deadline
        self._clock = clock

    def start_batch(self) -> None:
        """A new invocation: try the database again even if it just failed."""
        self._database.clear_failure()

    def apply(self, envelope: Envelope) -> Outcome:
        """Apply `envelope` exactly once. Raises on failure, after recording the error.

        DatabaseUnavailable (and any ServiceUnavailable) means "try again later";
        anything else means the event cannot apply as it is.
        """
        connection = self._database.connection()
        payload: Any = None
        try:
            payload = _payload(envelope.body)
            with connection.transaction():
                claimed = claim(connection, envelope, payload)
                if not claimed.run:
                    existing = claimed.existing or LedgerStatus.APPLIED
                    return Outcome(existing, duplicate=True)
                outcome = self._run_handler(connection, envelope, payload)
                finish(connection, envelope, outcome.status, order_id=outcome.order_id)
                if outcome.status is LedgerStatus.ORPHANED and self._past_deadline(envelope):
                    park(
                        connection,
                        envelope.provider,
                        envelope.event_id,
                        ORPHAN_REASON,
                        f"order {outcome.order_id} unknown after the deadline",
                    )
                    outcome = replace(outcome, status=LedgerStatus.PARKED)
            return outcome
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            if connection.closed or connection.broken:
                self._database.discard()
            raise DatabaseUnavailable(f"PostgreSQL failed: {describe(error)}") from error
        except Exception as error:
            self._record_failure(connection, envelope, payload, error)
            raise

    def _run_handler(self, connection: Connection, envelope: Envelope, payload: Any) -> Outcome:
        handler = self._registry.get(envelope.provider, envelope.event_type)
        if handler is None:
            return Outcome(LedgerStatus.IGNORED)
        if not isinstance(payload, dict):
            raise MalformedEvent("the event body is not a JSON object")
        return handler(HandlerContext(connection, self._mercadopago), Event(envelope, payload))

    def _past_deadline(self, envelope: Envelope) -> bool:
        happened = envelope.occurred_at or envelope.received_at
        return happened < self._clock() - self._orphan_deadline

    def _record_failure(
        self, connection: Connection, envelope: Envelope, payload: Any, error: Exception
    ) -> None:
        try:
            with connection.transaction():
                record_failure(connection, envelope, payload, describe(error))
        except psycopg.Error as record_error:
            # The original error is what matters; SQS will deliver the event again.
            logger.warning("could not record the failure", extra={"error": describe(record_error)})
