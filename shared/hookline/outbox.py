"""What the shop learns about its orders: callbacks inside the transaction, NOTIFY after it.

The transactional outbox. Every transaction that changes an order row (the
consumer applying an event, with any handler, built-in or a team's; the
reconciler settling orphans) opens an `Outbox` once a handler's code is done,
and calls its `publish` after its writes, before it commits. For each order
whose status or amounts it changed (its first state to its last:
`net_order_changes`):

1. the shop's callbacks (`registry.on_order_change`) run, in the order they
   were registered, on the transaction's connection: what they write commits
   together with the ledger row, or nothing does;
2. `pg_notify('<schema>_orders', payload)` is queued: PostgreSQL delivers it
   only if the transaction commits, and only then (never a rolled-back change).

A callback that raises rolls the whole transaction back, as `CallbackFailed`:
transient (the event is fine, the shop's code or table is not), so the event is
retried until the callback works, and never parked for it. So does a callback
that leaves hookline's session other than it found it: the transaction ended
(a raw COMMIT or ROLLBACK) or the search_path moved. A handler that moved the
search_path or ended the transaction is caught before the callbacks run
(`SessionChanged`, the event's own failure). docs/integration.md is the contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from hookline.database import (
    QUERY_CANCELED,
    SCHEMA_SETTING,
    Connection,
    StatementQueue,
    describe,
)
from hookline.deadline import Deadline
from hookline.errors import CallbackFailed, OutOfTime, SessionChanged
from hookline.locks import RowLocks
from hookline.metric_names import Metric
from hookline.observability import count, logger
from hookline.payments import OrderState, OrderStatus, net_order_changes

# The channel is `<schema>_orders`, the schema being hookline's configured one
# (the session's SCHEMA_SETTING, else its current_schema()), read before any
# callback runs: two stacks in one database (hookline_staging, hookline_prod)
# never hear each other, whatever a callback does to its search_path.
CHANNEL_SUFFIX = "_orders"
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; a refused NOTIFY
# would fail the event on every attempt, so a payload never gets that long.
MAX_NOTIFY_BYTES = 7999
# A full NOTIFY queue (a listener stuck in a transaction holds it) fails every
# commit that notifies. NOTIFY is at-most-once by contract, payments are not: past
# this share of the queue, changes are committed without their notification.
NOTIFY_QUEUE_LIMIT = 0.5
CALLBACK_FAILED_METRIC = Metric.ORDER_CALLBACK_FAILED
NOTIFY_SKIPPED_METRIC = Metric.ORDER_NOTIFY_SKIPPED

# Sent with the event's first statements (BEGIN, the ledger row): the transaction
# and search_path a handler and the callbacks must leave as they are, hookline's
# schema (SCHEMA_SETTING, set on each session hookline opens), and how full the
# NOTIFY queue is.
_SESSION_QUERY = (
    "SELECT pg_current_xact_id()::text AS xid, current_setting('search_path') AS search_path,"
    " nullif(current_setting(%(setting)s, true), '') AS configured,"
    " current_schema() AS current_schema, pg_notification_queue_usage() AS queue_usage"
)
# And one after each callback.
_CHECK_QUERY = (
    "SELECT pg_current_xact_id()::text AS xid, current_setting('search_path') AS search_path"
)
# What a callback that ran COMMIT did: nothing can take that back.
_COMMITTED = (
    "it ended hookline's transaction with COMMIT: the event's writes are committed,"
    " but the callbacks after it and the NOTIFY never ran"
)


def channel(schema: str) -> str:
    """The NOTIFY channel of the hookline in `schema` (`hookline` → `hookline_orders`)."""
    return schema + CHANNEL_SUFFIX


@dataclass(frozen=True)
class Cause:
    """The event whose applying changed the order (for orphans settled later, the latest
    of the events that waited for it)."""

    provider: str
    event_id: str
    event_type: str


@dataclass(frozen=True)
class OrderChanged:
    """One order's change in one transaction, as a callback receives it."""

    order_id: str
    before: OrderState
    after: OrderState
    cause: Cause

    @property
    def status(self) -> OrderStatus:
        return self.after.status

    @property
    def previous_status(self) -> OrderStatus:
        return self.before.status


OrderCallback = Callable[[Connection, OrderChanged], None]


@dataclass(frozen=True)
class _Session:
    """hookline's transaction as the outbox found it, which each callback must leave so."""

    xid: str
    search_path: str
    channel: str
    queue_usage: float


class Outbox:
    """One transaction's order changes, told to the shop's callbacks and listeners.

    Open it as soon as the code hookline does not own (a handler) is done, inside
    the transaction; `publish` after every write to orders, last before commit.

    With a `queue` (the applier's), the session's facts travel with the statements
    already queued (BEGIN and the ledger row) and the NOTIFY with the commit; the
    caller sends the queue. Without one, they are sent at once.
    """

    def __init__(self, locks: RowLocks, queue: StatementQueue | None = None) -> None:
        """Raises SessionChanged if the session is not hookline's any more: a handler
        ended the transaction or moved the search_path (the event's own failure);
        with a `queue`, when the session's facts are first needed instead."""
        self._locks = locks
        self._queue = queue or StatementQueue(locks.connection)
        self._sends_own = queue is None
        if self._sends_own:
            _in_transaction(locks.connection)
        self._pending = self._queue.add(_SESSION_QUERY, {"setting": SCHEMA_SETTING})
        self._found: _Session | None = None
        if self._sends_own:
            self._session()

    def _session(self) -> _Session:
        if self._found is None:
            self._found = _session(self._locks.connection, self._pending.one())
        return self._found

    def after_handler(self) -> None:
        """For an outbox opened before the handler ran: SessionChanged if the handler
        ended the transaction (a COMMIT then a BEGIN included), moved the search_path,
        or swallowed a database error (the event's own failure)."""
        problem = _left(self._locks.connection, self._session())
        if problem is not None:
            raise SessionChanged(f"a handler broke hookline's transaction: {problem}")

    def publish(
        self, cause: Cause, callbacks: Sequence[OrderCallback], deadline: Deadline | None = None
    ) -> None:
        """Run the callbacks and queue the NOTIFY for each order the transaction changed.

        Raises CallbackFailed if a callback failed (the caller's transaction must
        roll back). A callback's statement cancelled once `deadline` has passed is
        re-raised as it is (the caller's own deadline handling).
        """
        connection = self._locks.connection
        changes = [
            OrderChanged(change.order_id, change.before, change.after, cause)
            for change in net_order_changes(self._locks.order_changes)
            if change.after != change.before  # recomputed, but the row is as it was
        ]
        if not changes:
            return
        session = self._session()
        skipped = 0
        for changed in changes:
            if callbacks:
                # A callback sees every write queued before it.
                self._queue.flush()
            for callback in callbacks:
                _run(callback, connection, changed, session, deadline or Deadline.never())
            if session.queue_usage >= NOTIFY_QUEUE_LIMIT:
                skipped += 1
                continue
            self._queue.add("SELECT pg_notify(%s, %s)", (session.channel, notify_payload(changed)))
        if self._sends_own:
            self._queue.flush()
        if skipped:
            count(NOTIFY_SKIPPED_METRIC, skipped)
            logger.warning(
                "NOTIFY skipped: PostgreSQL's notification queue is filling up"
                " (a listener is stuck in a transaction); listeners must re-read orders",
                extra={
                    "provider": cause.provider,
                    "event_id": cause.event_id,
                    "event_type": cause.event_type,
                    "orders": skipped,
                    "queue_usage": round(session.queue_usage, 3),
                },
            )


def _in_transaction(connection: Connection) -> None:
    if connection.info.transaction_status is not TransactionStatus.INTRANS:
        _abandon(connection)
        raise SessionChanged("a handler ended hookline's transaction (COMMIT or ROLLBACK)")


def _session(connection: Connection, row: Mapping[str, Any] | None) -> _Session:
    """The transaction and search_path the callbacks must keep, and the channel."""
    assert row is not None
    # NULL on a session hookline did not open (a test's, a script's): its own schema.
    schema = row["configured"] or row["current_schema"]
    if row["configured"] is not None and row["search_path"] != schema:
        _abandon(connection)
        raise SessionChanged(
            f"a handler set the search_path to {row['search_path']!r}:"
            f" it must stay hookline's schema {schema!r}"
        )
    if schema is None:
        _abandon(connection)
        raise SessionChanged("no schema on the search_path: a handler changed it")
    return _Session(row["xid"], row["search_path"], channel(schema), float(row["queue_usage"]))


def _run(
    callback: OrderCallback,
    connection: Connection,
    changed: OrderChanged,
    session: _Session,
    deadline: Deadline,
) -> None:
    try:
        callback(connection, changed)
    except OutOfTime:
        raise
    except psycopg.Error as error:
        if connection.closed or connection.broken:
            # The connection, not the shop's code: the caller handles it as it
            # handles any statement of its own.
            raise
        if error.sqlstate == QUERY_CANCELED and deadline.remaining() <= 0:
            raise  # the invocation's deadline cancelled it: the caller hands the work back
        raise _failed(callback, changed, _raised(connection, session, error)) from error
    except Exception as error:  # whatever the shop's code raises is its own failure
        if deadline.remaining() <= 0:
            # The deadline's cancel, wrapped by the shop's own library (SQLAlchemy's
            # OperationalError): hand the work back, as for any statement of hookline's.
            raise OutOfTime("the invocation's time ran out in an order callback") from error
        raise _failed(callback, changed, _raised(connection, session, error)) from error
    problem = _left(connection, session)
    if problem is not None:
        raise _failed(callback, changed, problem)


def _raised(connection: Connection, session: _Session, error: Exception) -> str:
    if connection.info.transaction_status is TransactionStatus.IDLE:
        return f"{_ended(connection, session)}; then {describe(error)}"
    return describe(error)


def _left(connection: Connection, session: _Session) -> str | None:
    """What a callback that returned broke of hookline's transaction, if anything."""
    status = connection.info.transaction_status
    if status is TransactionStatus.INERROR:
        # It caught a database error and went on: nothing more can run, and
        # hookline must not take the aborted transaction for the database's fault.
        return "it swallowed a database error (transaction aborted)"
    if status is TransactionStatus.INTRANS:
        row = connection.execute(_CHECK_QUERY).fetchone()
        assert row is not None
        if row["xid"] == session.xid:
            if row["search_path"] == session.search_path:
                return None
            # Set inside the transaction: the rollback undoes it, the session is kept.
            return (
                f"it changed the search_path to {row['search_path']!r}"
                " (qualify the shop's tables instead: public.orders)"
            )
    # psycopg refuses connection.commit() inside hookline's transaction block, not
    # the same statements sent as SQL (COMMIT, ROLLBACK, END, ABORT).
    return _ended(connection, session)


def _ended(connection: Connection, session: _Session) -> str:
    """The callback ended hookline's transaction: say how, and drop the session."""
    try:
        row = connection.execute(
            "SELECT pg_xact_status(%s::xid8) AS status", (session.xid,)
        ).fetchone()
        outcome = None if row is None else row["status"]
    except psycopg.Error:
        outcome = None
    _abandon(connection)
    if outcome == "committed":
        return _COMMITTED
    if outcome == "aborted":
        return "it ended hookline's transaction with ROLLBACK: nothing of the event was written"
    return "it ended hookline's transaction"


def _abandon(connection: Connection) -> None:
    """Close a session someone else's code ended or reshaped: what it ran outside
    hookline's transaction (a SET, a lock) would outlive the rollback and poison
    every later event. Whoever needs a connection next opens a fresh one."""
    connection.close()


def _failed(callback: OrderCallback, changed: OrderChanged, error: str) -> CallbackFailed:
    name = f"{callback.__module__}.{getattr(callback, '__qualname__', repr(callback))}"
    count(CALLBACK_FAILED_METRIC)
    logger.error(
        "order callback failed after committing the event: its retry finds it applied"
        if _COMMITTED in error
        else "order callback failed: the event rolls back and is retried",
        extra={
            "callback": name,
            "order_id": changed.order_id,
            "provider": changed.cause.provider,
            "event_id": changed.cause.event_id,
            "event_type": changed.cause.event_type,
            "error": error,
        },
    )
    return CallbackFailed(f"order callback {name} failed: {error}")


def notify_payload(changed: OrderChanged) -> str:
    """Compact JSON, always under MAX_NOTIFY_BYTES: the whole change if it fits, else
    `"truncated": true` with the statuses and, if it fits, the order id (listeners
    then read the order row)."""
    after = changed.after
    statuses = {"status": after.status.value, "previous_status": changed.before.status.value}
    full: dict[str, Any] = {
        "order_id": changed.order_id,
        **statuses,
        "amount": after.amount,
        "paid_amount": after.paid_amount,
        "refunded_amount": after.refunded_amount,
        "currency": after.currency,
        "provider": changed.cause.provider,
        "event_id": changed.cause.event_id,
        "event_type": changed.cause.event_type,
    }
    candidates = (
        full,
        {"truncated": True, "order_id": changed.order_id, **statuses},
        {"truncated": True, **statuses},
    )
    for candidate in candidates:
        # ASCII only (json's default escaping): one byte per character in any server encoding.
        payload = json.dumps(candidate, separators=(",", ":"))
        if len(payload) <= MAX_NOTIFY_BYTES:
            return payload
    raise AssertionError("the statuses alone always fit")
