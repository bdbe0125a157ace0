"""What the shop learns about its orders: callbacks inside the transaction, NOTIFY after it.

The transactional outbox. Every transaction that changes an order row (the
consumer applying an event, with any handler, built-in or a team's; the
reconciler settling orphans) calls `publish` after its writes, before it
commits. For each order whose status or amounts it changed (its first state to
its last: `net_order_changes`):

1. the shop's callbacks (`registry.on_order_change`) run, in the order they
   were registered, on the transaction's connection: what they write commits
   together with the ledger row, or nothing does;
2. `pg_notify('<schema>_orders', payload)` is queued: PostgreSQL delivers it
   only if the transaction commits, and only then (never a rolled-back change).

A callback that raises rolls the whole transaction back, as `CallbackFailed`:
transient (the event is fine, the shop's code or table is not), so the event is
retried until the callback works, and never parked for it. docs/integration.md
is the contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from hookline.database import QUERY_CANCELED, Connection, describe
from hookline.errors import CallbackFailed, OutOfTime
from hookline.locks import RowLocks
from hookline.observability import count, logger
from hookline.payments import OrderState, OrderStatus, net_order_changes

# The channel is `<schema>_orders`, the schema being the session's current_schema():
# two stacks in one database (hookline_staging, hookline_prod) never hear each other.
CHANNEL_SUFFIX = "_orders"
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; a refused NOTIFY
# would fail the event on every attempt, so a payload never gets that long.
MAX_NOTIFY_BYTES = 7999
CALLBACK_FAILED_METRIC = "OrderCallbackFailed"


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


def publish(locks: RowLocks, cause: Cause, callbacks: Sequence[OrderCallback]) -> None:
    """Run the callbacks and queue the NOTIFY for each order the transaction changed.

    Call it inside the transaction, after every write to orders. Raises
    CallbackFailed if a callback raised (the caller's transaction must roll back).
    """
    connection = locks.connection
    for change in net_order_changes(locks.order_changes):
        if change.after == change.before:
            continue  # recomputed, but the row is as it was
        changed = OrderChanged(change.order_id, change.before, change.after, cause)
        for callback in callbacks:
            _run(callback, connection, changed)
        connection.execute(
            "SELECT pg_notify(current_schema() || %s, %s)",
            (CHANNEL_SUFFIX, notify_payload(changed)),
        )


def _run(callback: OrderCallback, connection: Connection, changed: OrderChanged) -> None:
    try:
        callback(connection, changed)
    except OutOfTime:
        raise
    except psycopg.Error as error:
        if connection.closed or connection.broken or error.sqlstate == QUERY_CANCELED:
            # The connection or the invocation's deadline, not the shop's code:
            # the caller handles it as it handles any statement of its own.
            raise
        raise _failed(callback, changed, describe(error)) from error
    except Exception as error:  # whatever the shop's code raises is its own failure
        raise _failed(callback, changed, describe(error)) from error
    if connection.info.transaction_status is TransactionStatus.INERROR:
        # It caught a database error and went on: nothing more can run, and
        # hookline must not take the aborted transaction for the database's fault.
        raise _failed(callback, changed, "it swallowed a database error (transaction aborted)")


def _failed(callback: OrderCallback, changed: OrderChanged, error: str) -> CallbackFailed:
    name = f"{callback.__module__}.{getattr(callback, '__qualname__', repr(callback))}"
    count(CALLBACK_FAILED_METRIC)
    logger.error(
        "order callback failed: the event rolls back and is retried",
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
