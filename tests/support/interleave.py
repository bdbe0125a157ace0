"""Forcing two (or more) transactions to overlap, deterministically, without sleeps.

A holder connection locks the contended rows (`SELECT ... FOR UPDATE`). Each
contender starts in its own thread, and the next one starts only once
PostgreSQL shows the previous one waiting for a lock (pg_stat_activity,
`wait_event_type = 'Lock'`) or it has finished. Then the holder lets go and
every contender runs on from where it waits. So each has done all its work up
to its first contended lock before any of them commits: a read taken before
that lock misses the other's write (a lost update), and two transactions that
lock the rows in opposite orders deadlock, every run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

WAIT_SECONDS = 15.0
POLL_SECONDS = 0.002


@dataclass(frozen=True)
class Row:
    """One row to hold, by the columns of its key: Row("orders", {"id": "o-1"})."""

    table: str
    key: Mapping[str, str]

    def lock(self) -> tuple[sql.Composed, tuple[str, ...]]:
        where = sql.SQL(" AND ").join(
            sql.SQL("{} = %s").format(sql.Identifier(column)) for column in self.key
        )
        query = sql.SQL("SELECT 1 FROM {} WHERE {} FOR UPDATE").format(
            sql.Identifier(self.table), where
        )
        return query, tuple(self.key.values())


@dataclass
class Contender:
    """A transaction to run in a thread. `backend_pid` is its connection's server process."""

    name: str
    backend_pid: int
    action: Callable[[], object]
    # Runs in the test's thread just before the contender starts (e.g. what a
    # provider API will answer it).
    prepare: Callable[[], None] | None = None


@dataclass
class Finish:
    name: str
    blocked: bool = False
    # What it was seen waiting for when the next one started (pg_stat_activity).
    waited_for: str = ""
    result: object = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> str:
        if self.error is not None:
            cause = self.error.__cause__
            detail = f" (caused by {type(cause).__name__}: {cause})" if cause else ""
            return f"{self.name}: {type(self.error).__name__}: {self.error}{detail}"
        return f"{self.name}: {self.result!r}"


class InterleaveError(AssertionError):
    pass


def _run(contender: Contender, finish: Finish) -> None:
    try:
        finish.result = contender.action()
    except BaseException as error:  # noqa: BLE001 - reported to the test thread
        finish.error = error
    finally:
        finish.done.set()


def _wait_until_blocked(
    monitor: psycopg.Connection[tuple[object, ...]], contender: Contender, finish: Finish
) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not finish.done.is_set():
        row = monitor.execute(
            "SELECT wait_event_type, wait_event, query FROM pg_stat_activity WHERE pid = %s",
            (contender.backend_pid,),
        ).fetchone()
        if row is not None and row[0] == "Lock":
            finish.blocked = True
            finish.waited_for = f"{row[1]} lock in: {row[2]}"
            return
        if time.monotonic() > deadline:
            raise InterleaveError(
                f"{contender.name} neither waited for a lock nor finished in {WAIT_SECONDS} s"
            )
        time.sleep(POLL_SECONDS)


def interleave(
    database_url: str, held: Sequence[Row], contenders: Sequence[Contender]
) -> list[Finish]:
    """Run `contenders` against the rows in `held` as described above; their finishes, in order.

    Every held row must exist. Each contender must use its own connection (one
    per thread), whose server pid it names.
    """
    finishes = [Finish(contender.name) for contender in contenders]
    threads: list[threading.Thread] = []
    with (
        psycopg.connect(database_url, autocommit=True) as monitor,
        psycopg.connect(database_url) as holder,
    ):
        try:
            for row in held:
                query, params = row.lock()
                if holder.execute(query, params).fetchone() is None:
                    raise InterleaveError(f"nothing to hold: no {row.table} row {dict(row.key)}")
            for contender, finish in zip(contenders, finishes, strict=True):
                if contender.prepare is not None:
                    contender.prepare()
                thread = threading.Thread(
                    target=_run, args=(contender, finish), name=contender.name, daemon=True
                )
                threads.append(thread)
                thread.start()
                _wait_until_blocked(monitor, contender, finish)
        finally:
            holder.rollback()
        for thread, finish in zip(threads, finishes, strict=False):
            thread.join(WAIT_SECONDS * 2)
            if thread.is_alive():
                raise InterleaveError(f"{finish.name} did not finish after the holder let go")
    return finishes
