"""The consumer's provider APIs pointed at a sandbox (or any server), as tests build them."""

from __future__ import annotations

from typing import Any

from hookline.clients.provider_apis import ProviderApis


def sandbox_apis(mercadopago_url: str, token: str, **http: Any) -> ProviderApis:
    """Mercado Pago's API at `mercadopago_url`, signed in with `token`."""
    return ProviderApis(
        {"mercadopago_access_token": token}.__getitem__, {"mercadopago": mercadopago_url}, **http
    )
