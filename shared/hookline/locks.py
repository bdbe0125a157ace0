"""The rows one transaction changes, locked in the one order every writer uses.

Payments first (by provider, then payment id), then orders (by id). Two
transactions that take locks in one global order can wait for each other but
never deadlock, whatever handlers, providers or FIFO groups they come from.
`hookline.payments` takes every payment and order lock through `RowLocks`, so
a handler (built-in or a team's) that locks out of order fails loudly with
LockOrderError in its tests instead of deadlocking in production.

`RowLocks` also collects the order changes the transaction made, so the
caller can report them once it has committed (and only then): every
transition an alarm watches is counted, whichever path made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from hookline.database import Connection

if TYPE_CHECKING:
    from hookline.payments import OrderChange


class LockOrderError(RuntimeError):
    """A row was locked after one that must come after it: a bug in the code that asked."""


class RowKind(IntEnum):
    """Lock order between kinds: every payment before any order."""

    PAYMENT = 0
    ORDER = 1


@dataclass
class RowLocks:
    connection: Connection
    _held: list[tuple[RowKind, tuple[str, ...]]] = field(default_factory=list)
    # Payments this transaction inserted (so they are new, though now found).
    created_payments: set[tuple[str, str]] = field(default_factory=set)
    order_changes: list[OrderChange] = field(default_factory=list)

    def claim(self, kind: RowKind, *key: str) -> None:
        """Record that this transaction is about to lock `key`; refuse an out-of-order lock."""
        wanted = (kind, key)
        if wanted in self._held:
            return
        if self._held and wanted < max(self._held):
            held_kind, held_key = max(self._held)
            raise LockOrderError(
                f"{kind.name.lower()} {'/'.join(key)} locked after"
                f" {held_kind.name.lower()} {'/'.join(held_key)}: lock payments, then orders,"
                " each in key order"
            )
        self._held.append(wanted)
