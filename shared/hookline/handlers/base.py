"""What a domain handler gets and returns.

A handler runs inside the event's apply transaction: everything it writes
through `context.connection` commits together with the ledger row, or not at all.
Payment and order rows are locked through `context.locks` (hookline.payments does
it): payments first, then orders, so no two handlers can deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from hookline.database import Connection
from hookline.deadline import Deadline
from hookline.envelope import Envelope
from hookline.errors import MalformedEvent
from hookline.ledger import LedgerStatus
from hookline.locks import RowLocks
from hookline.payments import PaymentUpdate, RefundUpdate, apply_payment_and_sync, apply_refund
from hookline.providers.base import ApiRead, ProviderApi, text_field
from hookline.storable import is_storable_text

# Amounts are bigint columns: a larger one can never apply.
MAX_BIGINT = 2**63 - 1


class ApiReader(Protocol):
    """Reads a provider's API (hookline.clients.provider_apis.ProviderApis), within `deadline`."""

    def read(
        self, api: ProviderApi, request: ApiRead, *, deadline: Deadline | None = None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Event:
    envelope: Envelope
    payload: Mapping[str, Any]

    @property
    def provider(self) -> str:
        return self.envelope.provider

    @property
    def event_type(self) -> str:
        return self.envelope.event_type

    @property
    def occurred_at(self) -> datetime | None:
        return self.envelope.occurred_at


@dataclass(frozen=True)
class HandlerContext:
    locks: RowLocks
    # Every thin provider's API, through one fetch mechanism.
    apis: ApiReader
    # The invocation's time left: provider calls are fitted into it.
    deadline: Deadline = field(default_factory=Deadline.never)

    @property
    def connection(self) -> Connection:
        """The event's transaction."""
        return self.locks.connection

    def fetch(self, api: ProviderApi, request: ApiRead) -> dict[str, Any]:
        """What `api` answers to `request` (a thin event's full resource), in the time left.

        ProviderApiUnavailable (an outage, a 5xx, a timeout) and ConfigurationError
        (refused credentials) are transient: the event waits in SQS and is never
        parked for them. ResourceNotFound means the API does not know the resource.
        """
        return self.apis.read(api, request, deadline=self.deadline)


@dataclass(frozen=True)
class Outcome:
    """How an event ended: the ledger status and, for dashboards and logs, its effect."""

    status: LedgerStatus
    order_id: str | None = None
    order_status: str | None = None
    amount_mismatch: bool = False
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "order_id": self.order_id,
            "order_status": self.order_status,
            "amount_mismatch": self.amount_mismatch,
            "duplicate": self.duplicate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(
            status=LedgerStatus(data["status"]),
            order_id=data.get("order_id"),
            order_status=data.get("order_status"),
            amount_mismatch=bool(data.get("amount_mismatch")),
            duplicate=bool(data.get("duplicate")),
        )


Handler = Callable[[HandlerContext, Event], Outcome]


def apply_payment_event(context: HandlerContext, update: PaymentUpdate) -> Outcome:
    """Move the payment, then its order; `orphaned` if the shop has no such order yet.

    One round trip for both (`apply_payment_and_sync`); their writes travel with
    the next statements, or, for hookline's own handlers, with the commit.
    """
    change, order = apply_payment_and_sync(context.locks, update)
    order_id = change.after.order_id
    if change.stale:
        return Outcome(LedgerStatus.STALE, order_id=order_id)
    if order_id is None:
        return Outcome(LedgerStatus.APPLIED)
    if order is None:
        return Outcome(LedgerStatus.ORPHANED, order_id=order_id)
    return Outcome(
        LedgerStatus.APPLIED,
        order_id=order_id,
        order_status=order.after.status.value,
        amount_mismatch=order.became_mismatch,
    )


def apply_refund_event(
    context: HandlerContext,
    refund: RefundUpdate,
    occurred_at: datetime | None,
    payment: PaymentUpdate | None = None,
) -> Outcome:
    """Record one refund (by its own id), then move its payment to the refunds' new total.

    `stale` when the refund's record did not change (an older view of it). `payment`:
    what else the event says about the payment (its amount, its order), if anything;
    its refunded amount is always the recorded refunds' total.
    """
    stale, total = apply_refund(context.locks, refund)
    if stale:
        return Outcome(LedgerStatus.STALE)
    base = payment or PaymentUpdate(
        provider=refund.provider,
        payment_id=refund.payment_id,
        occurred_at=occurred_at,
        currency=refund.currency,
    )
    return apply_payment_event(context, replace(base, amount_refunded=total))


# Reading payloads: a field that is missing or of the wrong type is a MalformedEvent
# naming the field, never a KeyError deep in a handler.


def mapping(data: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    current: Any = data
    for key in path:
        current = current.get(key) if isinstance(current, Mapping) else None
    if not isinstance(current, Mapping):
        raise MalformedEvent(f"{'.'.join(path)} is missing or not an object")
    return current


def text(data: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> str | None:
    value = text_field(data.get(key), what, required=required)
    if value is not None and not is_storable_text(value):
        raise MalformedEvent(f"{what} holds a NUL or a lone surrogate")
    return value


def required_text(data: Mapping[str, Any], key: str, what: str) -> str:
    value = text(data, key, what)
    assert value is not None
    return value


def integer(data: Mapping[str, Any], key: str, what: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedEvent(f"{what} is not a non-negative integer")
    if value > MAX_BIGINT:
        raise MalformedEvent(f"{what} is larger than PostgreSQL's bigint")
    return value
