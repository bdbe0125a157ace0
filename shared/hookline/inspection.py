"""The vocabulary of the ledger that the reconciler answers and the CLI shows: its
statuses, the fields of an event, the page bounds of a listing.

Standard library only: the CLI reads it to build its options and help without
loading pydantic or the database driver (hookline.reconcile.actions does).
"""

from __future__ import annotations

from enum import StrEnum


class LedgerStatus(StrEnum):
    RECEIVED = "received"
    APPLIED = "applied"
    STALE = "stale"
    IGNORED = "ignored"
    ORPHANED = "orphaned"
    PARKED = "parked"
    # Was parked; a human closed its parking (`hookline parked resolve`).
    RESOLVED = "resolved"
    FAILED = "failed"


# The ledger fields every event answer carries, in this order.
EVENT_FIELDS = (
    "provider",
    "event_id",
    "event_type",
    "status",
    "object_id",
    "order_id",
    "occurred_at",
    "received_at",
    "processed_at",
    "attempts",
    "last_error",
)

# A listing's page (`events`, `parked`): its default and its bound.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
