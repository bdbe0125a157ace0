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
from urllib.parse import urlencode

# Bodies that are forms, not JSON.
FORM_PROVIDERS = ("khalti", "mollie")
_PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")
_EXACT = re.compile(r"^\$\{([a-z_]+)\}$")


class UnknownEventType(ValueError):
    """The simulator has no fixture for this provider and event type."""


def _alnum(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=length))


def _digits(rng: random.Random, length: int) -> int:
    return rng.randint(10 ** (length - 1), 10**length - 1)


def _psp_reference(rng: random.Random) -> str:
    """An Adyen pspReference: 16 upper-case letters and digits."""
    return "".join(rng.choices(string.ascii_uppercase + string.digits, k=16))


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
            # eSewa's transaction_uuid is the shop's order id (alphanumerics and `-`).
            "esewa": order_id or f"{_digits(rng, 6)}-{_digits(rng, 6)}",
            "esewa_code": _alnum(rng, 7).upper(),
            "khalti": _alnum(rng, 22),
            "khalti_txn": _alnum(rng, 22),
            "mollie": f"tr_{_alnum(rng, 10)}",
            "paddle": f"txn_{_alnum(rng, 26).lower()}",
            "adjustment_id": f"adj_{_alnum(rng, 26).lower()}",
            "adyen": _psp_reference(rng),
        }
        # Drawn from the ids above, not from `rng`: a seeded run's other ids stay as they were.
        ids.update(
            {
                "razorpay": f"pay_{intent[:14]}",
                "razorpay_order_id": f"order_{square_payment[:14]}",
                "razorpay_refund_id": f"rfnd_{square_payment[-14:]}",
                "lemonsqueezy": str(ids["shopify"])[:7],
                "woocommerce": ids["order_number"],
            }
        )
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


def _razorpay(status: str) -> _Kind:
    failed = status == "failed"
    return _Kind(
        "razorpay_payment",
        lambda s: {
            "razorpay_status": status,
            "razorpay_order_id": s.ids["razorpay_order_id"],
            "captured": status == "captured",
            "fee": s.amount * 2 // 100 if status == "captured" else None,
            "tax": s.amount * 36 // 10_000 if status == "captured" else None,
            "error_code": "BAD_REQUEST_ERROR" if failed else None,
            "error_description": "Payment failed due to incorrect card details" if failed else None,
            "error_source": "customer" if failed else None,
            "error_step": "payment_authentication" if failed else None,
            "error_reason": "incorrect_card_details" if failed else None,
        },
    )


def _razorpay_refund(s: Subject) -> dict[str, Any]:
    full = s.refund_amount >= s.amount
    return {
        "refunded": s.refund_amount,
        "refund_status": "processed",
        "razorpay_status": "refunded" if full else "captured",
        "payment_refund_status": "full" if full else "partial",
        "razorpay_order_id": s.ids["razorpay_order_id"],
        "razorpay_refund_id": s.ids["razorpay_refund_id"],
        "fee": s.amount * 2 // 100,
        "tax": s.amount * 36 // 10_000,
    }


def _lemonsqueezy(status: str, formatted: str, *, refunded: bool = False) -> _Kind:
    return _Kind(
        "lemonsqueezy_order_refunded" if refunded else "lemonsqueezy_order",
        lambda s: {
            "ls_status": status,
            "ls_status_formatted": formatted,
            "ls_refunded": refunded,
            "refunded": s.refund_amount if refunded else 0,
            "refunded_decimal": _decimal(s.refund_amount if refunded else 0),
        },
    )


def _woocommerce(status: str, *, paid: bool) -> _Kind:
    def values(s: Subject) -> dict[str, Any]:
        unpaid: dict[str, Any] = {} if paid else {"date_paid_gmt": None}
        return {
            "wc_status": status,
            "wc_number": str(s.ids["woocommerce"]),
            "wc_refunds": [],
            "wc_editable": not paid,
            "wc_needs_payment": not paid,
            **unpaid,
        }

    return _Kind("woocommerce_order", values)


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
    "razorpay": {
        "payment.authorized": _razorpay("authorized"),
        "payment.captured": _razorpay("captured"),
        "payment.failed": _razorpay("failed"),
        "order.paid": _Kind(
            "razorpay_order_paid",
            lambda s: {
                "razorpay_order_id": s.ids["razorpay_order_id"],
                "fee": s.amount * 2 // 100,
                "tax": s.amount * 36 // 10_000,
            },
        ),
        "refund.processed": _Kind("razorpay_refund", _razorpay_refund),
    },
    "lemonsqueezy": {
        "order_created": _lemonsqueezy("paid", "Paid"),
        "order_refunded": _lemonsqueezy("refunded", "Refunded", refunded=True),
    },
    "woocommerce": {
        "order.created": _woocommerce("pending", paid=False),
        "order.updated": _woocommerce("processing", paid=True),
    },
    # The success redirect's document (signed by signing.signed_body), the forwarded
    # return_url callback, Mollie's `id=`: each names a payment the consumer fetches.
    "esewa": {"payment": _Kind("esewa_success", lambda s: {})},
    "khalti": {"payment": _Kind("khalti_callback", lambda s: {})},
    "mollie": {"payment": _Kind("mollie_payment", lambda s: {})},
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
    "paddle": {
        "transaction.completed": _Kind(
            "paddle_transaction",
            lambda s: {"transaction_status": "completed", "attempt_status": "captured"},
        ),
        "transaction.payment_failed": _Kind(
            "paddle_transaction",
            lambda s: {
                "transaction_status": "ready",
                "attempt_status": "error",
                "error_code": "declined",
            },
        ),
        "adjustment.created": _Kind(
            "paddle_adjustment", lambda s: {"adjustment_status": "pending_approval"}
        ),
        "adjustment.updated": _Kind(
            "paddle_adjustment", lambda s: {"adjustment_status": "approved"}
        ),
    },
    "adyen": {
        "AUTHORISATION": _Kind("adyen_notification", lambda s: {"amount_value": s.amount}),
        "CAPTURE": _Kind("adyen_notification", lambda s: {"amount_value": s.amount}),
        "CANCELLATION": _Kind("adyen_notification", lambda s: {"amount_value": s.amount}),
        "REFUND": _Kind("adyen_notification", lambda s: {"amount_value": s.refund_amount}),
        "CANCEL_OR_REFUND": _Kind("adyen_notification", lambda s: {"amount_value": s.amount}),
        "CHARGEBACK": _Kind("adyen_notification", lambda s: {"amount_value": s.amount}),
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
        "paddle": f"evt_{_alnum(rng, 26).lower()}",
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
        # WooCommerce's `*_gmt` fields: whole seconds, no offset.
        "created_gmt": occurred.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "date_paid_gmt": occurred.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request_id": f"req_{_alnum(rng, 14)}",
        "idempotency_key": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "shopify_order_id": ids["shopify"],
        "cancelled_at": _iso(occurred) if event_type == "orders/cancelled" else None,
        "cancel_reason": "customer" if event_type == "orders/cancelled" else None,
        "receipt_number": str(payment_id)[:4],
        "number": ids["order_number"],
        # eSewa writes rupees as a JSON number (1000.0); Khalti's and eSewa's transaction codes.
        "amount_rupees": subject.amount / 100,
        "product_code": "EPAYTEST",
        "transaction_code": ids["esewa_code"] if provider == "esewa" else ids["khalti_txn"],
        "object_number": ids["github"],
        **{key: ids[key] for key in ("charge_id", "session_id", "refund_id", "square_order_id")},
        **{key: ids[key] for key in ("order_number", "refund_number", "transaction_id")},
        # Paddle: amounts are strings of minor units.
        "notification_id": f"ntf_{_alnum(rng, 26).lower()}",
        "adjustment_id": ids["adjustment_id"],
        "amount_text": str(subject.amount),
        "refunded_text": str(subject.refund_amount),
        "error_code": None,
        # Adyen: a modification has its own pspReference and names the payment's.
        "psp_reference": ids["adyen"] if event_type == "AUTHORISATION" else _psp_reference(rng),
        "original_reference": None if event_type == "AUTHORISATION" else ids["adyen"],
        "success": "true",
        "reason": "058705:1111:03/2030" if event_type == "AUTHORISATION" else None,
        **kind.values(subject),
    }
    document = _fill(_fixture(kind.fixture), values)
    if provider == "adyen":
        item = document["notificationItems"][0]["NotificationRequestItem"]
        # Adyen leaves out what a notification lacks (no originalReference on an authorisation).
        for key in [key for key, value in item.items() if value is None]:
            del item[key]
        # hookline names an Adyen notification by signed fields (providers.adyen.event_id).
        event_id = f"{event_type}:{item['pspReference']}:{item['success']}"
    if provider in FORM_PROVIDERS:
        # The shop forwards Khalti's return_url parameters, Mollie posts `id=`: forms.
        body = urlencode({k: "" if v is None else str(v) for k, v in document.items()}).encode()
    else:
        body = json.dumps(document, separators=(",", ":")).encode()
    headers, query = _delivery(provider, event_type, event_id, subject, occurred, rng)
    if provider == "razorpay":
        # Named by what Razorpay signs: the event, the entity it is about, its time
        # (hookline.providers.razorpay.event_id), never the unsigned event-id header.
        entity = {"refund": "razorpay_refund_id", "order": "razorpay_order_id"}.get(
            event_type.split(".")[0], "razorpay"
        )
        event_id = f"{event_type}:{ids[entity]}:{values['created']}"
    elif provider == "lemonsqueezy":
        event_id = f"{event_type}:{payment_id}:{values['created_iso']}"
    elif provider == "woocommerce":
        event_id = (
            f"order:{payment_id}:{values['created_gmt']}:{values['wc_status']}"
            f":{len(values['wc_refunds'])}"
        )
    if provider == "mercadopago":
        # hookline names a notification by what Mercado Pago signs, not by the body's id.
        event_id = f"{query['data.id']}:{headers['x-request-id']}"
    elif provider == "esewa":
        # Signed parts only (hookline.providers.esewa.event_id).
        signed = (
            document["product_code"],
            document["transaction_uuid"],
            document["transaction_code"],
        )
        event_id = ":".join(str(part) for part in signed)
    elif provider in FORM_PROVIDERS:
        # `{id}:{received_at}`: the receiver names each delivery when it arrives (its
        # answer's event_id); until then, the payment it is about.
        event_id = f"{payment_id}:(on receipt)"
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
    if provider in ("esewa", *FORM_PROVIDERS):
        # eSewa's `data=` and Khalti's parameters as the shop's own page forwards them;
        # Mollie's form post.
        return {"content-type": "application/x-www-form-urlencoded"}, {}
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
    if provider == "paddle":
        return {**json_type, "user-agent": "Paddle"}, {}
    if provider == "adyen":
        return {**json_type, "user-agent": "Adyen HttpClient 1.0"}, {}
    if provider == "razorpay":
        # The header's event id is unsigned: hookline names the event by the body.
        return {
            **json_type,
            "user-agent": "Razorpay-Webhook/v1",
            "x-razorpay-event-id": _alnum(rng, 14),
        }, {}
    if provider == "lemonsqueezy":
        return {**json_type, "user-agent": "LemonSqueezy-Hookshot", "x-event-name": event_type}, {}
    if provider == "woocommerce":
        resource, _, action = event_type.partition(".")
        return {
            **json_type,
            "user-agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
            "x-wc-webhook-source": "https://shop.example.com/",
            "x-wc-webhook-topic": event_type,
            "x-wc-webhook-resource": resource,
            "x-wc-webhook-event": action,
            "x-wc-webhook-id": "17",
            "x-wc-webhook-delivery-id": _alnum(rng, 32).lower(),
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
