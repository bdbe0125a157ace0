"""A local HTTP server answering like a provider's API, started by the test that needs it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeMercadoPago:
    """GET /v1/payments/{id} with a bearer token, like api.mercadopago.com."""

    access_token: str
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Statuses to answer before serving normally (e.g. [503, 503]); "down" refuses all.
    failures: list[int] = field(default_factory=list)
    down: bool = False
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.requests.append(path)
        if self.down:
            return 503, {"message": "service unavailable"}
        if self.failures:
            return self.failures.pop(0), {"message": "injected failure"}
        if authorization != f"Bearer {self.access_token}":
            return 401, {"message": "invalid access token", "status": 401}
        prefix = "/v1/payments/"
        if path.startswith(prefix) and path[len(prefix) :] in self.payments:
            return 200, self.payments[path[len(prefix) :]]
        return 404, {"message": "Payment not found", "error": "not_found", "status": 404}


@contextmanager
def serve(fake: FakeMercadoPago) -> Iterator[FakeMercadoPago]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = fake.answer(self.path, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


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
