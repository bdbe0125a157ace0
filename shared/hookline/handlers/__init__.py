"""Domain handlers: the registry and the built-in payment and order handlers."""

from hookline.handlers import mercadopago, shopify, square, stripe
from hookline.handlers.base import Event, Handler, HandlerContext, Outcome, PaymentFetcher
from hookline.handlers.registry import HandlerRegistry, registry
from hookline.ledger import LedgerStatus
from hookline.outbox import Cause, OrderCallback, OrderChanged
from hookline.payments import OrderState, OrderStatus

__all__ = [
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
    "PaymentFetcher",
    "mercadopago",
    "registry",
    "shopify",
    "square",
    "stripe",
]
