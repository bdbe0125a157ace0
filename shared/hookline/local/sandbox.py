"""Provider APIs on 127.0.0.1, for what the consumer fetches (no internet locally).

Mercado Pago's events are thin: the consumer fetches GET /v1/payments/{id}.
The local stack points MercadoPagoApiUrl here; `hookline send mercadopago`
registers each payment first (POST /mercadopago/_sandbox/payments, a sandbox
route, not Mercado Pago's). Tests start one to inject failures and outages.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MERCADOPAGO_PREFIX = "/mercadopago"
REGISTER_PATH = f"{MERCADOPAGO_PREFIX}/_sandbox/payments"
_PAYMENTS = f"{MERCADOPAGO_PREFIX}/v1/payments/"


def mercadopago_payment(
    payment_id: str,
    status: str,
    amount: str,
    *,
    currency: str = "BRL",
    external_reference: str | None = None,
    refunded: str = "0",
    updated: str = "2026-11-20T10:00:00.000-04:00",
) -> dict[str, Any]:
    """The fields of GET /v1/payments/{id} that hookline reads, shaped as documented."""
    return {
        "id": int(payment_id),
        "status": status,
        "status_detail": "accredited" if status == "approved" else status,
        "transaction_amount": float(amount),
        "transaction_amount_refunded": float(refunded),
        "currency_id": currency,
        "external_reference": external_reference,
        "date_created": "2026-11-20T09:59:00.000-04:00",
        "date_last_updated": updated,
        "payment_method_id": "pix",
        "live_mode": False,
    }


@dataclass
class ProviderSandbox:
    """Answers like api.mercadopago.com (bearer token required) under /mercadopago."""

    mercadopago_token: str | None
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Statuses to answer before serving normally (e.g. [503, 503]); `down` refuses all.
    failures: list[int] = field(default_factory=list)
    down: bool = False
    requests: list[str] = field(default_factory=list)
    url: str = ""

    @property
    def mercadopago_url(self) -> str:
        return self.url + MERCADOPAGO_PREFIX

    def answer(
        self, method: str, path: str, authorization: str | None, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == REGISTER_PATH:
            payment = json.loads(body)
            self.payments[str(payment["id"])] = payment
            return 201, payment
        # As the provider's API sees it, without the sandbox's prefix.
        self.requests.append(path.removeprefix(MERCADOPAGO_PREFIX))
        if self.down:
            return 503, {"message": "service unavailable"}
        if self.failures:
            return self.failures.pop(0), {"message": "injected failure"}
        if self.mercadopago_token is None or authorization != f"Bearer {self.mercadopago_token}":
            return 401, {"message": "invalid access token", "status": 401}
        if (
            method == "GET"
            and path.startswith(_PAYMENTS)
            and path[len(_PAYMENTS) :] in self.payments
        ):
            return 200, self.payments[path[len(_PAYMENTS) :]]
        return 404, {"message": "Payment not found", "error": "not_found", "status": 404}


@contextmanager
def serve(sandbox: ProviderSandbox, host: str = "127.0.0.1") -> Iterator[ProviderSandbox]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, answer = sandbox.answer(
                self.command, self.path, self.headers.get("Authorization"), body
            )
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _reply

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the consumer logs what it fetched."""

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sandbox.url = f"http://{host}:{server.server_address[1]}"
    try:
        yield sandbox
    finally:
        server.shutdown()
        server.server_close()
