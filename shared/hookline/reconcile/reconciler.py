"""One reconciler run, and the operator actions a direct invoke asks for.

A scheduled run: check the database, redrive the DLQ (each letter judged by
its own ledger row), settle orphans, recover missed events, delete ledger rows
past retention, and record the run with its counts in reconciliation_runs.
While the database health check fails, nothing runs: an outage must not turn
events into parked ones, and they wait safely in SQS.

Each step runs whatever happened to the one before it: a step that fails is
recorded in the run row (`error`), logged and counted (ReconcileStepFailed,
alarmed), and the run goes on. Every step stops starting work before the
invocation's deadline; what is left goes to the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from hookline import status
from hookline.database import Connection, Database, describe
from hookline.deadline import Deadline, RemainingTime
from hookline.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    HooklineError,
    InvalidRequest,
)
from hookline.metric_names import Metric
from hookline.observability import count, logger
from hookline.orphans import SettleResult, settle
from hookline.queue import EventQueue
from hookline.reconcile import actions
from hookline.reconcile.actions import error_answer
from hookline.reconcile.breaker import CircuitBreaker
from hookline.reconcile.parking import judge, park_dead_letter
from hookline.reconcile.recover import Recoverer, RecoveryResult, latest_checkpoints
from hookline.reconcile.redrive import Judge, Park, Redriver, RedriveResult
from hookline.reconcile.retention import delete_expired

T = TypeVar("T")
# Kept back from the Lambda timeout to record the run.
FINISH_RESERVE_SECONDS = 10.0
# Kept back from recovery for retention, the step after it.
RETENTION_SECONDS = 15.0

ACTIONS = tuple(actions.REQUESTS)


def _lost(error: psycopg.Error) -> bool:
    """The server went away or cancelled the statement (a timeout): try again later."""
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


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
        redriver: Callable[[Judge, Park], Redriver],
        status_target: Callable[[], status.Target],
        recoverer: Recoverer | None = None,
        queue: EventQueue | None = None,
        breaker: CircuitBreaker | None = None,
        *,
        orphan_deadline: timedelta,
        retention_days: int,
        max_redrives: int = 3,
        max_permanent_failures: int = 3,
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
        self.max_redrives = max_redrives
        self.max_permanent_failures = max_permanent_failures
        self.clock = clock

    def handle(
        self, event: Mapping[str, Any], context: RemainingTime | None = None
    ) -> dict[str, Any]:
        """A scheduled event runs everything; `{"action": ...}` runs what it names.

        Every operator request is answered, never raised: `{"ok": true, ...}`, or
        `{"ok": false, "error": "<one line>", "kind": "<HooklineError subclass>"}`,
        the kind naming the errors table's row (its CLI exit code, ...). A replay's
        failed answer also says what it sent (actions.replay).
        """
        scheduled = isinstance(event, Mapping) and event.get("detail-type") == "Scheduled Event"
        if scheduled and event.get("action") is None:
            # A scheduled run that fails unexpectedly raises: a Lambda error, alarmed.
            deadline = Deadline.of(context, reserve_seconds=FINISH_RESERVE_SECONDS)
            return self.run(deadline=deadline)
        try:
            return self._answer(event, context)
        except HooklineError as error:
            answer = error_answer(error)
            logger.info("operator request refused", extra={k: answer[k] for k in ("kind", "error")})
            return answer
        except Exception as error:  # noqa: BLE001 - an operator gets an answer, not a traceback
            logger.exception("operator action failed unexpectedly")
            return error_answer(
                HooklineError(f"unexpected {type(error).__name__}: see the reconciler's log")
            )

    def _answer(self, event: Any, context: RemainingTime | None) -> dict[str, Any]:
        if not isinstance(event, Mapping):
            raise InvalidRequest(
                f"a request is a JSON object with an action ({', '.join(ACTIONS)})"
            )
        action = event.get("action")
        model = actions.REQUESTS.get(action) if isinstance(action, str) else None
        if action is None:
            raise InvalidRequest(f'no action: send {{"action": ...}}, one of {", ".join(ACTIONS)}')
        if model is None:
            raise InvalidRequest(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        request = model.parse(str(action), event)  # before any database work
        if action == "status":
            return {"ok": True, "status": status.collect(self.status_target())}
        if action in ("redrive", "reconcile"):
            deadline = Deadline.of(context, reserve_seconds=FINISH_RESERVE_SECONDS)
            return self.run(redrive_only=action == "redrive", deadline=deadline)
        # A replay stops sending in time to answer what it sent.
        return self._operate(request, Deadline.of(context, reserve_seconds=FINISH_RESERVE_SECONDS))

    def _operate(self, request: actions.Request, deadline: Deadline) -> dict[str, Any]:
        if (
            isinstance(request, actions.ReplayRequest | actions.ResolveRequest)
            and self.queue is None
        ):
            raise ConfigurationError("this reconciler has no queue to send to (QUEUE_URL)")
        connection = self._healthy_connection()
        if connection is None:
            raise DatabaseUnavailable("database unavailable: try again when it is back")
        try:
            if isinstance(request, actions.EventsRequest):
                return actions.events(connection, request)
            if isinstance(request, actions.EventRequest):
                return actions.event(connection, request)
            if isinstance(request, actions.ParkedRequest):
                return actions.parked(connection, request)
            assert self.queue is not None
            if isinstance(request, actions.ReplayRequest):
                return actions.replay(connection, self.queue, request, deadline)
            assert isinstance(request, actions.ResolveRequest)
            return actions.resolve(connection, self.queue, request)
        except psycopg.Error as error:
            if not (connection.closed or connection.broken or _lost(error)):
                raise
            # A connection that failed mid-request is not reused.
            self.database.discard()
            raise DatabaseUnavailable(f"PostgreSQL failed: {describe(error)}") from error

    def _healthy_connection(self) -> Connection | None:
        # Twice: a connection kept from the last run may have died with a server
        # restart since; only a fresh one failing too means the database is down.
        for _ in range(2):
            # A new run deserves a fresh attempt even if the last one failed.
            self.database.clear_failure()
            try:
                connection = self.database.connection()
                connection.execute("SELECT 1")
            except (DatabaseUnavailable, psycopg.Error) as error:
                self.database.discard()
                failure = error
                continue
            return connection
        logger.warning(
            "database unavailable: reconcile skipped", extra={"error": describe(failure)}
        )
        count(Metric.RECONCILE_SKIPPED)
        return None

    def run(
        self, *, redrive_only: bool = False, deadline: Deadline | None = None
    ) -> dict[str, Any]:
        connection = self._healthy_connection()
        if connection is None:
            # Events wait in SQS; the next run goes on.
            answer: dict[str, Any] = {
                **error_answer(DatabaseUnavailable("database unavailable: run skipped")),
                "skipped": "database unavailable",
            }
            if self.breaker is not None:
                answer["breaker"] = self.breaker.database_down()
            return answer
        breaker = self.breaker.database_up() if self.breaker is not None else None
        # The run row starts with the checkpoints it goes on from; recovery
        # advances them in it as it goes, so a run cut short keeps its progress.
        previous = latest_checkpoints(connection)
        row = connection.execute(
            "INSERT INTO reconciliation_runs (checkpoints) VALUES (%s) RETURNING id",
            (Jsonb(previous),),
        ).fetchone()
        assert row is not None
        run_id = row["id"]
        run = _Run(self.database, run_id, deadline or Deadline.never())
        counts = self._steps(run, previous, redrive_only)
        # EventsParked is counted where each park commits: a run cut short still counts them.
        for name, value in (
            (Metric.EVENTS_REDRIVEN, counts.redriven),
            (Metric.ORPHANS_SETTLED, counts.orphans_settled),
            (Metric.RETENTION_DELETED, counts.retention_deleted),
        ):
            count(name, value)
        # A step that broke the connection does not cost the run its record.
        self._finish(run.connection, run_id, counts, run.failures)
        if run.failures:
            count(Metric.RECONCILE_FAILED)
        logger.info(
            "reconcile run done",
            extra={"run_id": run_id, **asdict(counts), "failed_steps": sorted(run.failures)},
        )
        answer = {"ok": not run.failures, "run_id": run_id, **asdict(counts)}
        if run.failures:
            # Done, but something failed: the errors table's base row (exit 1).
            steps = ", ".join(sorted(run.failures))
            answer |= error_answer(HooklineError(f"run {run_id}: steps failed: {steps}"))
            answer["failed_steps"] = dict(run.failures)
        if breaker is not None:
            answer["breaker"] = breaker
        return answer

    def _steps(self, run: _Run, previous: Mapping[str, str], redrive_only: bool) -> RunCounts:
        redriven = run.step("redrive", lambda: self._redrive(run), RedriveResult())
        if redrive_only:
            return RunCounts(redriven.redriven, redriven.parked)
        now = self.clock()
        settled = run.step(
            "settle",
            lambda: settle(
                run.connection, now=now, deadline=self.orphan_deadline, until=run.deadline
            ),
            SettleResult(),
        )
        # Settling ran the shop's callbacks: a SET they left must not outlive the step.
        self.database.verify_session()
        recovered = RecoveryResult()
        if self.recoverer is not None:
            recoverer = self.recoverer
            # Recovery can always use more time (a busy account's backlog): keep
            # some for retention, which runs after it.
            recovery_deadline = replace(run.deadline, at=run.deadline.at - RETENTION_SECONDS)
            recovered = run.step(
                "recover",
                lambda: recoverer.run(
                    run.connection, previous, now, recovery_deadline, run.checkpoint
                ),
                recovered,
            )
        deleted = run.step(
            "retention",
            lambda: delete_expired(
                run.connection, now=now, days=self.retention_days, until=run.deadline
            ),
            0,
        )
        return RunCounts(
            redriven=redriven.redriven,
            parked=redriven.parked + settled.parked,
            orphans_settled=settled.settled,
            recovered=recovered.total,
            retention_deleted=deleted,
        )

    def _redrive(self, run: _Run) -> RedriveResult:
        # The connection is asked for per letter: one that broke it costs only itself.
        return self.redriver(
            lambda letter: judge(
                run.connection,
                letter,
                max_redrives=self.max_redrives,
                max_permanent_failures=self.max_permanent_failures,
            ),
            lambda letter, reason: park_dead_letter(run.connection, letter, reason),
        ).run(until=run.deadline)

    @staticmethod
    def _finish(
        connection: Connection, run_id: int, counts: RunCounts, failures: Mapping[str, str]
    ) -> None:
        connection.execute(
            "UPDATE reconciliation_runs SET finished_at = now(), status = %s, redriven = %s,"
            " parked = %s, orphans_settled = %s, recovered = %s, retention_deleted = %s,"
            " error = %s WHERE id = %s",
            (
                "failed" if failures else "succeeded",
                counts.redriven,
                counts.parked,
                counts.orphans_settled,
                counts.recovered,
                counts.retention_deleted,
                "; ".join(f"{step}: {error}" for step, error in failures.items()) or None,
                run_id,
            ),
        )


@dataclass
class _Run:
    """One run's database, deadline and step failures."""

    database: Database
    run_id: int
    deadline: Deadline
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def connection(self) -> Connection:
        """The run's connection, opened again if a step broke it."""
        return self.database.connection()

    def step(self, name: str, work: Callable[[], T], nothing: T) -> T:
        """Run one step; a failure is recorded and the run goes on with `nothing` from it."""
        try:
            return work()
        except Exception as error:  # noqa: BLE001 - one failing step must not stop the others
            self.failures[name] = describe(error)
            count(Metric.RECONCILE_STEP_FAILED, step=name)
            logger.exception("reconcile step failed", extra={"step": name, "run_id": self.run_id})
            return nothing

    def checkpoint(self, provider: str, moment: str) -> None:
        """Recovery's progress, saved at once (autocommit) in this run's row."""
        self.connection.execute(
            "UPDATE reconciliation_runs"
            " SET checkpoints = checkpoints || jsonb_build_object(%s::text, %s::text)"
            " WHERE id = %s",
            (provider, moment, self.run_id),
        )
