"""Provider APIs on 127.0.0.1, for what hookline fetches (no internet locally).

- Mercado Pago's events are thin: the consumer fetches GET /v1/payments/{id}.
  `hookline send mercadopago` registers each payment first (POST
  /mercadopago/_sandbox/payments, a sandbox route, not Mercado Pago's).
- The reconciler lists Stripe's events (GET /v1/events) and searches Square's
  (POST /v2/events) to recover events whose webhook never arrived.

The local stack points the API URL parameters here; tests start one to serve
documented response shapes, pages, errors and 429s.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MERCADOPAGO_PREFIX = "/mercadopago"
STRIPE_PREFIX = "/stripe"
SQUARE_PREFIX = "/square"
REGISTER_PATH = f"{MERCADOPAGO_PREFIX}/_sandbox/payments"


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


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class ProviderSandbox:
    """Answers like api.mercadopago.com, api.stripe.com and Square's API, each under its
    prefix (/mercadopago, /stripe, /square), with a bearer token required."""

    mercadopago_token: str | None
    stripe_api_key: str | None = None
    square_access_token: str | None = None
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    stripe_events: list[dict[str, Any]] = field(default_factory=list)
    square_events: list[dict[str, Any]] = field(default_factory=list)
    # Largest page served whatever the client asks, to exercise pagination.
    page_size: int = 100
    # Statuses to answer before serving normally (e.g. [503, 429]); `down` refuses all.
    failures: list[int] = field(default_factory=list)
    down: bool = False
    requests: list[str] = field(default_factory=list)
    url: str = ""

    @property
    def mercadopago_url(self) -> str:
        return self.url + MERCADOPAGO_PREFIX

    @property
    def stripe_url(self) -> str:
        return self.url + STRIPE_PREFIX

    @property
    def square_url(self) -> str:
        return self.url + SQUARE_PREFIX

    def answer(
        self, method: str, path: str, authorization: str | None, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == REGISTER_PATH:
            payment = json.loads(body)
            self.payments[str(payment["id"])] = payment
            return 201, payment
        prefix, _, rest = path.partition("/")[2].partition("/")
        # As the provider's API sees it, without the sandbox's prefix.
        self.requests.append("/" + rest)
        if self.down:
            return 503, {"message": "service unavailable"}
        if self.failures:
            return self.failures.pop(0), {"message": "injected failure"}
        token = {
            "mercadopago": self.mercadopago_token,
            "stripe": self.stripe_api_key,
            "square": self.square_access_token,
        }.get(prefix)
        if token is None or authorization != f"Bearer {token}":
            return 401, {"message": "invalid access token", "status": 401}
        split = urlsplit("/" + rest)
        if prefix == "mercadopago" and method == "GET":
            payment_id = split.path.removeprefix("/v1/payments/")
            if payment_id in self.payments:
                return 200, self.payments[payment_id]
        if prefix == "stripe" and method == "GET" and split.path == "/v1/events":
            return 200, self._stripe_page(dict(parse_qsl(split.query)))
        if prefix == "square" and method == "POST" and split.path == "/v2/events":
            return 200, self._square_page(json.loads(body or b"{}"))
        return 404, {"message": "not found", "error": "not_found", "status": 404}

    def _stripe_page(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /v1/events: newest first, `created[gte]`, `starting_after`, `has_more`."""
        since = int(params.get("created[gte]", "0"))
        listed = sorted(
            (e for e in self.stripe_events if int(e["created"]) >= since),
            key=lambda e: (-int(e["created"]), str(e["id"])),
        )
        after = params.get("starting_after")
        if after is not None:
            ids = [str(e["id"]) for e in listed]
            listed = listed[ids.index(after) + 1 :] if after in ids else []
        size = min(int(params.get("limit", "10")), self.page_size)
        return {
            "object": "list",
            "url": "/v1/events",
            "data": listed[:size],
            "has_more": len(listed) > size,
        }

    def _square_page(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /v2/events (SearchEvents): oldest first, `created_at.start_at`, `cursor`."""
        start = _parse_time(
            request.get("query", {}).get("filter", {}).get("created_at", {}).get("start_at", "")
        )
        listed = sorted(
            (
                e
                for e in self.square_events
                if start is None or (_parse_time(e["created_at"]) or start) >= start
            ),
            key=lambda e: str(e["created_at"]),
        )
        offset = int(request.get("cursor") or 0)
        size = min(int(request.get("limit", 100)), self.page_size)
        page: dict[str, Any] = {"events": listed[offset : offset + size]}
        if offset + size < len(listed):
            page["cursor"] = str(offset + size)
        return page


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
            if status == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _reply

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the functions log what they fetched."""

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sandbox.url = f"http://{host}:{server.server_address[1]}"
    try:
        yield sandbox
    finally:
        server.shutdown()
        server.server_close()
