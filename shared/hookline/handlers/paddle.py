"""Paddle Billing: completed and failed transactions, refunds as approved adjustments.

Paddle's transaction is the payment (`provider_payment_id` is its `txn_...`
id). The shop's order id travels in the transaction's `custom_data.order_id`,
which the shop sets when it opens the checkout (Paddle.js `customData`, or
`custom_data` on POST /transactions). Paddle copies a subscription's
custom_data onto every transaction it creates for it (renewals, charges,
upgrades), so only a transaction whose signed `origin` is not one of those
(`subscription_recurring`, `subscription_charge`, `subscription_update`,
`subscription_payment_method_change`) binds that order: a renewal is recorded as
a payment of its own, with no order, and never adds to the checkout's order.
Amounts are Paddle's strings of minor
units (`"1099"` is 10.99 USD); a transaction's is `details.totals.grand_total`
(what the customer was charged after credits), else `details.totals.total`.

Money going back is an adjustment with `action: "refund"` or `"chargeback"`
(Paddle creates a chargeback approved): each is recorded by its own id
(apply_refund), so several partial refunds of one transaction add up, and one
seen twice (created, then updated) counts once. Only an `approved` one moves
money; `pending_approval` is recorded as pending, `rejected` as failed. Other
actions (credit, chargeback_warning, and the reversals chargeback_reverse and
credit_reverse) are ignored here: a reversed chargeback stays counted as money
gone back until a human looks (docs/providers.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookline.errors import MalformedEvent
from hookline.handlers.base import (
    Event,
    HandlerContext,
    Outcome,
    apply_payment_event,
    apply_refund_event,
    integer,
    mapping,
    required_text,
    text,
)
from hookline.handlers.registry import registry
from hookline.ledger import LedgerStatus
from hookline.money import MAX_MINOR_DIGITS, currency_code
from hookline.payments import (
    PaymentStatus,
    PaymentUpdate,
    RefundStatus,
    RefundUpdate,
)

TRANSACTION_STATUS = {
    "transaction.completed": PaymentStatus.SUCCEEDED,
    "transaction.payment_failed": PaymentStatus.FAILED,
}

ADJUSTMENT_STATUS = {
    "pending_approval": RefundStatus.PENDING,
    "approved": RefundStatus.SUCCEEDED,
    "rejected": RefundStatus.FAILED,
    # Paddle reverses an adjustment it had approved: an approved refund stays counted
    # (apply_refund never shrinks a succeeded refund); a pending one ends here.
    "reversed": RefundStatus.CANCELED,
}


def minor_units(data: Mapping[str, Any], key: str, what: str) -> int:
    """Paddle's amount string of minor units (`"1099"`) as an integer."""
    value = data.get(key)
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise MalformedEvent(f"{what} is not a string of minor units")
    if len(value) > MAX_MINOR_DIGITS:
        raise MalformedEvent(f"{what} is larger than any amount")
    return integer({key: int(value)}, key, what)


# Transactions Paddle creates for an existing subscription: they carry its custom_data.
SUBSCRIPTION_ORIGINS = frozenset(
    {
        "subscription_recurring",
        "subscription_charge",
        "subscription_update",
        "subscription_payment_method_change",
    }
)
# Adjustments that take money back from the merchant.
MONEY_BACK_ACTIONS = frozenset({"refund", "chargeback"})
REVERSAL_ACTIONS = frozenset({"chargeback_reverse"})


def _order_id(transaction: Mapping[str, Any]) -> str | None:
    origin = transaction.get("origin")
    if isinstance(origin, str) and origin in SUBSCRIPTION_ORIGINS:
        # A renewal's custom_data names the checkout's order, already paid by another
        # transaction: binding it would count this payment towards that order too.
        return None
    custom = transaction.get("custom_data")
    if not isinstance(custom, Mapping):
        return None
    return text(custom, "order_id", "data.custom_data.order_id", required=False)


@registry.register("paddle", *TRANSACTION_STATUS)
def transaction(context: HandlerContext, event: Event) -> Outcome:
    txn = mapping(event.payload, "data")
    totals = mapping(txn, "details", "totals")
    key = "grand_total" if totals.get("grand_total") is not None else "total"
    amount = minor_units(totals, key, f"data.details.totals.{key}")
    status = TRANSACTION_STATUS[event.event_type]
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="paddle",
            payment_id=required_text(txn, "id", "data.id"),
            occurred_at=event.occurred_at,
            status=status,
            amount=amount,
            currency=currency_code(txn.get("currency_code"), "data.currency_code"),
            order_id=_order_id(txn),
            captured_amount=amount if status is PaymentStatus.SUCCEEDED else None,
        ),
    )


@registry.register("paddle", "adjustment.created", "adjustment.updated")
def adjustment(context: HandlerContext, event: Event) -> Outcome:
    adj = mapping(event.payload, "data")
    action = adj.get("action")
    if action in REVERSAL_ACTIONS and adj.get("status") == "approved":
        # Money hookline counted as gone back came back: a human settles it (parked).
        raise MalformedEvent(
            f"Paddle {action} reverses money hookline already counted: settle the"
            " payment by hand, then resolve this event"
        )
    if not isinstance(action, str) or action not in MONEY_BACK_ACTIONS:
        return Outcome(LedgerStatus.IGNORED)
    status = adj.get("status")
    if not isinstance(status, str) or status not in ADJUSTMENT_STATUS:
        raise MalformedEvent("data.status is not a known adjustment status")
    currency = currency_code(adj.get("currency_code"), "data.currency_code")
    payment_id = required_text(adj, "transaction_id", "data.transaction_id")
    return apply_refund_event(
        context,
        RefundUpdate(
            provider="paddle",
            refund_id=required_text(adj, "id", "data.id"),
            payment_id=payment_id,
            status=ADJUSTMENT_STATUS[status],
            amount=minor_units(mapping(adj, "totals"), "total", "data.totals.total"),
            currency=currency,
        ),
        event.occurred_at,
    )
