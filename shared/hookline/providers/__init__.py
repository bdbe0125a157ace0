"""The provider registry: path name → provider."""

from __future__ import annotations

from collections.abc import Mapping

from hookline.providers.adyen import Adyen
from hookline.providers.base import Provider, WebhookRequest
from hookline.providers.esewa import ESewa
from hookline.providers.generic import Generic, GenericSpec
from hookline.providers.github import GitHub
from hookline.providers.khalti import Khalti
from hookline.providers.lemonsqueezy import LemonSqueezy
from hookline.providers.mercadopago import API as MERCADOPAGO_API
from hookline.providers.mercadopago import MercadoPago
from hookline.providers.mollie import Mollie
from hookline.providers.paddle import Paddle
from hookline.providers.razorpay import Razorpay
from hookline.providers.shopify import Shopify
from hookline.providers.square import Square
from hookline.providers.stripe import Stripe
from hookline.providers.svix import StandardWebhooks, Svix
from hookline.providers.woocommerce import WooCommerce

PROVIDER_NAMES = (
    "stripe",
    "square",
    "mercadopago",
    "shopify",
    "github",
    "svix",
    "standard",
    "paddle",
    "adyen",
    "esewa",
    "khalti",
    "mollie",
    "razorpay",
    "lemonsqueezy",
    "woocommerce",
)

# Providers that sign nothing: their events are confirmed through their API, and their
# routes are throttled apart (template.yaml, UnsignedWebhookRateLimit).
UNSIGNED_PROVIDERS = ("khalti", "mollie")
# Keys of the secret document that hold API credentials as strings, beside the
# providers' lists of webhook secrets (Khalti's and Mollie's credential is their list).
STRIPE_API_KEY = "stripe_api_key"
SQUARE_ACCESS_TOKEN = "square_access_token"  # noqa: S105 - a key name, not a secret
CREDENTIAL_KEYS = (STRIPE_API_KEY, SQUARE_ACCESS_TOKEN, MERCADOPAGO_API.credential or "")
# What a generic sender may not be called: it would share a key of the secret document.
RESERVED_NAMES = (*PROVIDER_NAMES, *CREDENTIAL_KEYS)


def build_registry(
    *,
    square_notification_url: str | None = None,
    mercadopago_tolerance_seconds: int | None = None,
    generic: Mapping[str, GenericSpec] | None = None,
) -> Mapping[str, Provider]:
    """Every built-in provider, and each configured generic sender under its own name."""
    providers: list[Provider] = [
        Stripe(),
        Square(notification_url=square_notification_url),
        MercadoPago(tolerance_seconds=mercadopago_tolerance_seconds),
        Shopify(),
        GitHub(),
        Svix(),
        StandardWebhooks(),
        Paddle(),
        Adyen(),
        ESewa(),
        Khalti(),
        Mollie(),
        Razorpay(),
        LemonSqueezy(),
        WooCommerce(),
    ]
    providers.extend(Generic(spec) for spec in (generic or {}).values())
    return {provider.name: provider for provider in providers}


__all__ = [
    "CREDENTIAL_KEYS",
    "PROVIDER_NAMES",
    "RESERVED_NAMES",
    "UNSIGNED_PROVIDERS",
    "Provider",
    "WebhookRequest",
    "build_registry",
]
