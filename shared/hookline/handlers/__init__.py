"""Domain handlers: the registry and the built-in payment and order handlers."""

from hookline.handlers import (
    adyen,
    esewa,
    khalti,
    lemonsqueezy,
    mercadopago,
    mollie,
    paddle,
    razorpay,
    shopify,
    square,
    stripe,
    woocommerce,
)
from hookline.handlers.base import ApiReader, Event, Handler, HandlerContext, Outcome
from hookline.handlers.registry import HandlerRegistry, registry
from hookline.ledger import LedgerStatus
from hookline.outbox import Cause, OrderCallback, OrderChanged
from hookline.payments import OrderState, OrderStatus

__all__ = [
    "ApiReader",
    "Cause",
    "Event",
    "Handler",
    "HandlerContext",
    "HandlerRegistry",
    "LedgerStatus",
    "OrderCallback",
    "OrderChanged",
    "OrderState",
    "OrderStatus",
    "Outcome",
    "adyen",
    "esewa",
    "khalti",
    "lemonsqueezy",
    "mercadopago",
    "mollie",
    "paddle",
    "razorpay",
    "registry",
    "shopify",
    "square",
    "stripe",
    "woocommerce",
]
