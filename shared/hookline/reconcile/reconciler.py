"""One reconciler run, and the operator actions a direct invoke asks for.

A scheduled run: check the database, redrive the DLQ (parking what exceeded
MAX_REDRIVES), settle orphans, delete ledger rows past retention, and record
the run with its counts in reconciliation_runs. While the database health check
fails, nothing runs: an outage must not turn events into parked ones, and they
wait safely in SQS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hookline import status
from hookline.database import Connection, Database, describe
from hookline.errors import DatabaseUnavailable
from hookline.observability import count, logger
from hookline.orphans import settle
from hookline.queue import EventQueue
from hookline.reconcile import operator
from hookline.reconcile.breaker import CircuitBreaker
from hookline.reconcile.parking import park_dead_letter
from hookline.reconcile.recover import Recoverer, RecoveryResult, latest_checkpoints
from hookline.reconcile.redrive import DeadLetter, Redriver, RedriveResult
from hookline.reconcile.retention import delete_expired

ACTIONS = ("status", "redrive", "reconcile", "replay", "parked", "resolve")


@dataclass(frozen=True)
class RunCounts:
    redriven: int = 0
    parked: int = 0
    orphans_settled: int = 0
    recovered: int = 0
    retention_deleted: int = 0


class Reconciler:
    def __init__(
        self,
        database: Database,
        redriver: Callable[[Callable[[DeadLetter, str], None]], Redriver],
        status_target: Callable[[], status.Target],
        recoverer: Recoverer | None = None,
        queue: EventQueue | None = None,
        breaker: CircuitBreaker | None = None,
        *,
        orphan_deadline: timedelta,
        retention_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.redriver = redriver
        self.status_target = status_target
        self.recoverer = recoverer
        self.queue = queue
        self.breaker = breaker
        self.orphan_deadline = orphan_deadline
        self.retention_days = retention_days
        self.clock = clock

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A scheduled event runs everything; `{"action": ...}` runs what it names."""
        action = event.get("action")
        if action is None and event.get("detail-type") == "Scheduled Event":
            action = "reconcile"
        if action == "status":
            return {"ok": True, "status": status.collect(self.status_target())}
        if action in ("redrive", "reconcile"):
            return self.run(redrive_only=action == "redrive")
        if action in ("replay", "parked", "resolve"):
            return self._operate(str(action), event)
        return {"ok": False, "error": f"unknown action {action!r}; known: {', '.join(ACTIONS)}"}

    def _operate(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        connection = self._healthy_connection()
        if connection is None:
            return {"ok": False, "error": "database unavailable"}
        try:
            if action == "parked":
                return operator.parked(connection, request)
            if self.queue is None:
                return {"ok": False, "error": "this reconciler has no queue to send to"}
            if action == "replay":
                return operator.replay(connection, self.queue, request)
            return operator.resolve(connection, self.queue, request)
        except (operator.OperatorError, KeyError, TypeError, ValueError) as error:
            return {"ok": False, "error": str(error)}

    def _healthy_connection(self) -> Connection | None:
        # A new run deserves a fresh attempt even if the last one failed.
        self.database.clear_failure()
        try:
            connection = self.database.connection()
            connection.execute("SELECT 1")
        except (DatabaseUnavailable, psycopg.Error) as error:
            self.database.discard()
            logger.warning(
                "database unavailable: reconcile skipped", extra={"error": describe(error)}
            )
            count("ReconcileSkipped")
            return None
        return connection

    def run(self, *, redrive_only: bool = False) -> dict[str, Any]:
        connection = self._healthy_connection()
        if connection is None:
            answer: dict[str, Any] = {"ok": False, "skipped": "database unavailable"}
            if self.breaker is not None:
                answer["breaker"] = self.breaker.database_down()
            return answer
        breaker = self.breaker.database_up() if self.breaker is not None else None
        row = connection.execute(
            "INSERT INTO reconciliation_runs DEFAULT VALUES RETURNING id"
        ).fetchone()
        assert row is not None
        run_id = row["id"]
        try:
            counts, checkpoints = self._steps(connection, redrive_only)
        except Exception as error:
            self._finish(connection, run_id, "failed", RunCounts(), {}, describe(error))
            count("ReconcileFailed")
            raise
        self._finish(connection, run_id, "succeeded", counts, checkpoints, None)
        for name, value in (
            ("EventsRedriven", counts.redriven),
            ("EventsParked", counts.parked),
            ("OrphansSettled", counts.orphans_settled),
            ("RetentionDeleted", counts.retention_deleted),
        ):
            count(name, value)
        logger.info("reconcile run done", extra={"run_id": run_id, **asdict(counts)})
        answer = {"ok": True, "run_id": run_id, **asdict(counts)}
        if breaker is not None:
            answer["breaker"] = breaker
        return answer

    def _steps(
        self, connection: Connection, redrive_only: bool
    ) -> tuple[RunCounts, Mapping[str, str]]:
        previous = latest_checkpoints(connection)
        redriven: RedriveResult = self.redriver(
            lambda letter, reason: park_dead_letter(connection, letter, reason)
        ).run()
        if redrive_only:
            return RunCounts(redriven.redriven, redriven.parked), previous
        now = self.clock()
        settled = settle(connection, now=now, deadline=self.orphan_deadline)
        recovered = (
            self.recoverer.run(connection, previous, now)
            if self.recoverer is not None
            else RecoveryResult(checkpoints=dict(previous))
        )
        deleted = delete_expired(connection, now=now, days=self.retention_days)
        counts = RunCounts(
            redriven=redriven.redriven,
            parked=redriven.parked + settled.parked,
            orphans_settled=settled.settled,
            recovered=recovered.total,
            retention_deleted=deleted,
        )
        return counts, recovered.checkpoints

    @staticmethod
    def _finish(
        connection: Connection,
        run_id: int,
        outcome: str,
        counts: RunCounts,
        checkpoints: Mapping[str, str],
        error: str | None,
    ) -> None:
        connection.execute(
            "UPDATE reconciliation_runs SET finished_at = now(), status = %s, redriven = %s,"
            " parked = %s, orphans_settled = %s, recovered = %s, retention_deleted = %s,"
            " checkpoints = %s, error = %s WHERE id = %s",
            (
                outcome,
                counts.redriven,
                counts.parked,
                counts.orphans_settled,
                counts.recovered,
                counts.retention_deleted,
                Jsonb(dict(checkpoints)),
                error,
                run_id,
            ),
        )
