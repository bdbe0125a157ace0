"""The provider registry: path name → provider."""

from __future__ import annotations

from collections.abc import Mapping

from hookline.providers.base import Provider, WebhookRequest
from hookline.providers.github import GitHub
from hookline.providers.mercadopago import MercadoPago
from hookline.providers.shopify import Shopify
from hookline.providers.square import Square
from hookline.providers.stripe import Stripe
from hookline.providers.svix import StandardWebhooks, Svix

PROVIDER_NAMES = ("stripe", "square", "mercadopago", "shopify", "github", "svix", "standard")


def build_registry(
    *, square_notification_url: str | None = None, mercadopago_tolerance_seconds: int | None = None
) -> Mapping[str, Provider]:
    providers: list[Provider] = [
        Stripe(),
        Square(notification_url=square_notification_url),
        MercadoPago(tolerance_seconds=mercadopago_tolerance_seconds),
        Shopify(),
        GitHub(),
        Svix(),
        StandardWebhooks(),
    ]
    return {provider.name: provider for provider in providers}


__all__ = ["PROVIDER_NAMES", "Provider", "WebhookRequest", "build_registry"]
