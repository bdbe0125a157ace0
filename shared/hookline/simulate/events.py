"""Realistic provider events about one payment (or order), from fixtures.

A fixture holds `${name}` placeholders: a string that is exactly one
placeholder takes the value's own JSON type (number, null), otherwise the value
is substituted as text. Each event type names its fixture and the values that
make it that type (a succeeded intent has amount_received, a refund an amount).
"""

from __future__ import annotations

import json
import random
import re
import string
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

_PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")
_EXACT = re.compile(r"^\$\{([a-z_]+)\}$")


class UnknownEventType(ValueError):
    """The simulator has no fixture for this provider and event type."""


def _alnum(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=length))


def _digits(rng: random.Random, length: int) -> int:
    return rng.randint(10 ** (length - 1), 10**length - 1)


@dataclass(frozen=True)
class Subject:
    """The payment or order a lifecycle of events is about."""

    amount: int
    currency: str
    order_id: str | None
    refund_amount: int
    ids: Mapping[str, Any]

    @classmethod
    def new(
        cls,
        rng: random.Random,
        *,
        amount: int = 2000,
        currency: str = "USD",
        order_id: str | None = None,
        refund_amount: int | None = None,
    ) -> Subject:
        intent = _alnum(rng, 24)
        square_payment = _alnum(rng, 29)
        ids = {
            "stripe": f"pi_{intent}",
            "charge_id": f"ch_{intent}",
            "session_id": f"cs_test_{_alnum(rng, 56)}",
            "square": square_payment,
            "refund_id": f"{square_payment}_{_alnum(rng, 40)}",
            "square_order_id": _alnum(rng, 29),
            "mercadopago": str(_digits(rng, 11)),
            "shopify": _digits(rng, 13),
            "refund_number": _digits(rng, 12),
            "transaction_id": _digits(rng, 13),
            "order_number": rng.randint(1001, 9999),
            "github": _digits(rng, 10),
            "svix": f"user_{_alnum(rng, 27)}",
            "standard": f"inv_{_alnum(rng, 14)}",
        }
        return cls(amount, currency.upper(), order_id, refund_amount or amount, ids)


@dataclass(frozen=True)
class SimulatedEvent:
    """One delivery as the provider would make it, before signing."""

    provider: str
    event_type: str
    # The id hookline's ledger will know it by (for Mercado Pago, built from signed parts).
    event_id: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Kind:
    fixture: str
    values: Callable[[Subject], dict[str, Any]]


def _decimal(minor: int) -> str:
    return f"{minor / 100:.2f}"


def _intent(status: str, *, received: bool = False) -> _Kind:
    return _Kind(
        "stripe_payment_intent",
        lambda s: {"intent_status": status, "amount_received": s.amount if received else 0},
    )


CATALOG: dict[str, dict[str, _Kind]] = {
    "stripe": {
        "payment_intent.created": _intent("requires_payment_method"),
        "payment_intent.processing": _intent("processing"),
        "payment_intent.requires_action": _intent("requires_action"),
        "payment_intent.succeeded": _intent("succeeded", received=True),
        "payment_intent.payment_failed": _intent("requires_payment_method"),
        "payment_intent.canceled": _intent("canceled"),
        "charge.refunded": _Kind(
            "stripe_charge",
            lambda s: {"refunded": s.refund_amount, "fully_refunded": s.refund_amount >= s.amount},
        ),
        "checkout.session.completed": _Kind("stripe_checkout_session", lambda s: {}),
    },
    "square": {
        "payment.created": _Kind(
            "square_payment",
            lambda s: {"square_status": "APPROVED", "card_status": "AUTHORIZED", "version": 1},
        ),
        "payment.updated": _Kind(
            "square_payment",
            lambda s: {"square_status": "COMPLETED", "card_status": "CAPTURED", "version": 3},
        ),
        "refund.created": _Kind(
            "square_refund",
            lambda s: {"refund_status": "PENDING", "refunded": s.refund_amount, "version": 1},
        ),
        "refund.updated": _Kind(
            "square_refund",
            lambda s: {"refund_status": "COMPLETED", "refunded": s.refund_amount, "version": 2},
        ),
    },
    "shopify": {
        "orders/create": _Kind("shopify_order", lambda s: {"financial_status": "pending"}),
        "orders/paid": _Kind("shopify_order", lambda s: {"financial_status": "paid"}),
        "orders/cancelled": _Kind("shopify_order", lambda s: {"financial_status": "voided"}),
        "refunds/create": _Kind(
            "shopify_refund", lambda s: {"refunded_decimal": _decimal(s.refund_amount)}
        ),
    },
    "mercadopago": {"payment": _Kind("mercadopago_payment", lambda s: {})},
    "github": {
        "pull_request": _Kind("github_pull_request", lambda s: {}),
        "push": _Kind("github_push", lambda s: {}),
    },
    "svix": {
        "user.created": _Kind("svix_user", lambda s: {}),
        "user.updated": _Kind("svix_user", lambda s: {}),
        "user.deleted": _Kind("svix_user", lambda s: {}),
    },
    "standard": {
        "invoice.paid": _Kind("standard_invoice", lambda s: {}),
        "invoice.payment_failed": _Kind("standard_invoice", lambda s: {}),
    },
}


def event_types(provider: str) -> list[str]:
    return sorted(CATALOG.get(provider, {}))


def _fixture(name: str) -> Any:
    return json.loads(files("hookline.simulate").joinpath("fixtures", f"{name}.json").read_text())


def _fill(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if not isinstance(value, str):
        return value
    exact = _EXACT.match(value)
    if exact:
        return values[exact.group(1)]
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), value)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def build(
    provider: str,
    event_type: str,
    subject: Subject,
    rng: random.Random,
    *,
    occurred_at: datetime | None = None,
) -> SimulatedEvent:
    """One event about `subject`, with fresh ids, as `provider` would deliver it."""
    kind = CATALOG.get(provider, {}).get(event_type)
    if kind is None:
        known = ", ".join(event_types(provider)) or "none (unknown provider)"
        raise UnknownEventType(f"no {provider} {event_type!r} fixture; known: {known}")
    occurred = occurred_at or datetime.now(UTC)
    ids = subject.ids
    event_id = {
        "stripe": f"evt_{_alnum(rng, 24)}",
        "mercadopago": str(_digits(rng, 11)),
        "github": str(uuid.UUID(int=rng.getrandbits(128))),
        "svix": f"msg_{_alnum(rng, 27)}",
        "standard": f"msg_{_alnum(rng, 27)}",
    }.get(provider, str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    payment_id = ids.get(provider)
    values: dict[str, Any] = {
        "event_id": event_id,
        "event_number": int(event_id) if provider == "mercadopago" else 0,
        "event_type": event_type,
        "payment_id": payment_id,
        "order_id": subject.order_id,
        "amount": subject.amount,
        "amount_decimal": _decimal(subject.amount),
        "currency": subject.currency,
        "currency_lower": subject.currency.lower(),
        "created": int(occurred.timestamp()),
        "created_ms": int(occurred.timestamp() * 1000),
        "created_iso": _iso(occurred),
        "request_id": f"req_{_alnum(rng, 14)}",
        "idempotency_key": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "shopify_order_id": ids["shopify"],
        "cancelled_at": _iso(occurred) if event_type == "orders/cancelled" else None,
        "cancel_reason": "customer" if event_type == "orders/cancelled" else None,
        "receipt_number": str(payment_id)[:4],
        "number": ids["order_number"],
        "object_number": ids["github"],
        **{key: ids[key] for key in ("charge_id", "session_id", "refund_id", "square_order_id")},
        **{key: ids[key] for key in ("order_number", "refund_number", "transaction_id")},
        **kind.values(subject),
    }
    body = json.dumps(_fill(_fixture(kind.fixture), values), separators=(",", ":")).encode()
    headers, query = _delivery(provider, event_type, event_id, subject, occurred, rng)
    if provider == "mercadopago":
        # hookline names a notification by what Mercado Pago signs, not by the body's id.
        event_id = f"{query['data.id']}:{headers['x-request-id']}"
    return SimulatedEvent(provider, event_type, event_id, body, headers, query)


def _delivery(
    provider: str,
    event_type: str,
    event_id: str,
    subject: Subject,
    occurred: datetime,
    rng: random.Random,
) -> tuple[dict[str, str], dict[str, str]]:
    """The headers (signature aside) and query string the provider sends."""
    json_type = {"content-type": "application/json"}
    if provider == "stripe":
        return {
            "content-type": "application/json; charset=utf-8",
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }, {}
    if provider == "square":
        return {**json_type, "user-agent": "Square Connect v2", "square-version": "2024-10-17"}, {}
    if provider == "mercadopago":
        return {
            **json_type,
            "user-agent": "MercadoPago WebHook v1.0 payment",
            "x-request-id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        }, {"data.id": str(subject.ids["mercadopago"]), "type": "payment"}
    if provider == "shopify":
        return {
            **json_type,
            "user-agent": "Shopify-Captain-Hook",
            "x-shopify-topic": event_type,
            "x-shopify-event-id": event_id,
            "x-shopify-webhook-id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "x-shopify-shop-domain": "hookline-local.myshopify.com",
            "x-shopify-api-version": "2024-10",
            "x-shopify-triggered-at": _iso(occurred),
        }, {}
    if provider == "github":
        return {
            **json_type,
            "user-agent": "GitHub-Hookshot/044aadd",
            "x-github-event": event_type,
            "x-github-delivery": event_id,
            "x-github-hook-id": "292430182",
            "x-github-hook-installation-target-type": "repository",
        }, {}
    prefix = "svix-" if provider == "svix" else "webhook-"
    return {**json_type, "user-agent": "Svix-Webhooks/1.38.0", f"{prefix}id": event_id}, {}


def lifecycle(
    provider: str,
    types: list[str],
    subject: Subject,
    rng: random.Random,
    start: datetime | None = None,
) -> list[SimulatedEvent]:
    """Events about one subject, each a second after the one before (their true order)."""
    start = start or datetime.now(UTC)
    return [
        build(provider, kind, subject, rng, occurred_at=start + timedelta(seconds=index))
        for index, kind in enumerate(types)
    ]
