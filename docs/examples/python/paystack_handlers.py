"""A team's handlers for Paystack, a sender hookline has no module for.

Paystack is configured as a `generic` provider (docs/providers.md, "generic"):
hookline verifies `x-paystack-signature` (hex HMAC-SHA512 of the body) and
queues each event as `charge.success:<data.id>`, ordered by `data.reference`.
This module, named in HandlerModules, says what a successful charge means:
its payment is Paystack's `reference`, its order the `metadata.order_id` the
shop set when it initialized the transaction. Everything read is in the signed
body; amounts are already in the currency's minor unit (kobo, pesewas, cents).
"""

from __future__ import annotations

from hookline.handlers import Event, HandlerContext, Outcome, registry
from hookline.handlers.base import apply_payment_event, integer, mapping, required_text, text
from hookline.money import currency_code
from hookline.payments import PaymentStatus, PaymentUpdate

STATUS = {"charge.success": PaymentStatus.SUCCEEDED}


@registry.register("paystack", "charge.success")
def charge(context: HandlerContext, event: Event) -> Outcome:
    data = mapping(event.payload, "data")
    metadata = data.get("metadata")
    amount = integer(data, "amount", "data.amount")
    return apply_payment_event(
        context,
        PaymentUpdate(
            provider="paystack",
            payment_id=required_text(data, "reference", "data.reference"),
            occurred_at=event.occurred_at,
            status=STATUS[event.event_type],
            amount=amount,
            currency=currency_code(data.get("currency"), "data.currency"),
            order_id=text(metadata, "order_id", "data.metadata.order_id", required=False)
            if isinstance(metadata, dict)
            else None,
            captured_amount=amount,
        ),
    )
