"""Mercado Pago's payments API: the full payment behind a thin webhook.

The access token lives in the webhook secret under `mercadopago_access_token`
(see docs/providers.md); it is read on use, so a rotation needs no redeploy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hookline.clients.http import JsonHttpClient
from hookline.deadline import Deadline
from hookline.errors import MalformedEvent

DEFAULT_API_URL = "https://api.mercadopago.com"
_PAYMENT_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class MercadoPagoApi:
    def __init__(
        self, access_token: Callable[[], str], base_url: str = DEFAULT_API_URL, **http: Any
    ) -> None:
        self._http = JsonHttpClient(
            "mercadopago",
            base_url,
            lambda: {"Authorization": f"Bearer {access_token()}"},
            **http,
        )

    def payment(self, payment_id: str, *, deadline: Deadline | None = None) -> dict[str, Any]:
        if not _PAYMENT_ID.match(payment_id):
            raise MalformedEvent("the Mercado Pago payment id is not an id")
        return self._http.get("v1", "payments", payment_id, deadline=deadline)
