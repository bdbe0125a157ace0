"""Provider APIs on 127.0.0.1, for what hookline fetches (no internet locally).

- Mercado Pago's events are thin: the consumer fetches GET /v1/payments/{id}.
  `hookline send mercadopago` registers each payment first (POST
  /mercadopago/_sandbox/payments, a sandbox route, not Mercado Pago's).
- The reconciler lists Stripe's events (GET /v1/events: `created[gte|gt|lt|lte]`,
  `types[]`, at most 20) and searches Square's (POST /v2/events: `created_at`
  `start_at`/`end_at`, `event_types`) to recover events whose webhook never arrived.

The local stack points the API URL parameters here; tests start one to serve
documented response shapes, pages, errors and 429s.
"""

from __future__ import annotations

import json
import operator
import threading
import time
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
# A sandbox route, no provider's: POST {"down": bool} starts or ends an outage of every
# provider API at once (the soak's "provider API outage"); answered even while down.
FAULTS_PATH = "/_sandbox/faults"
# Stripe refuses more `types[]` than this in one request.
STRIPE_MAX_TYPES = 20


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
    # Requests refused while down, so far (the soak checks its outage met some).
    refused: int = 0
    # Seconds every Mercado Pago GET waits before its answer (a slow API); other
    # requests are served meanwhile.
    delay_seconds: float = 0.0
    # Each request as the provider's API sees it (path and query), and beside it
    # its JSON body (None without one), e.g. Square's search filters.
    requests: list[str] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
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
        if method == "POST" and path == FAULTS_PATH:
            faults = json.loads(body or b"{}")
            if not isinstance(faults, dict) or not isinstance(faults.get("down"), bool):
                return 400, {"message": 'expected {"down": true|false}'}
            self.down = faults["down"]
            return 200, {"down": self.down, "refused": self.refused}
        prefix, _, rest = path.partition("/")[2].partition("/")
        # As the provider's API sees it, without the sandbox's prefix.
        self.requests.append("/" + rest)
        try:
            self.bodies.append(json.loads(body) if body else None)
        except ValueError:
            self.bodies.append(None)
        if self.down:
            self.refused += 1
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
            return self._stripe_page(parse_qsl(split.query))
        if prefix == "square" and method == "POST" and split.path == "/v2/events":
            return 200, self._square_page(json.loads(body or b"{}"))
        return 404, {"message": "not found", "error": "not_found", "status": 404}

    def _stripe_page(self, query: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
        """GET /v1/events: newest first, `created[gte|gt|lt|lte]`, `types[]` (or `type`),
        `starting_after`, `has_more`."""
        params = dict(query)
        types = {value for name, value in query if name == "types[]"}
        if len(types) > STRIPE_MAX_TYPES:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "message": f"types: at most {STRIPE_MAX_TYPES} event types",
                    "param": "types",
                }
            }
        if "type" in params:
            types.add(params["type"])
        bounds = {"gte": operator.ge, "gt": operator.gt, "lt": operator.lt, "lte": operator.le}
        limits = [
            (bounds[op], int(params[f"created[{op}]"]))
            for op in bounds
            if f"created[{op}]" in params
        ]
        listed = sorted(
            (
                e
                for e in self.stripe_events
                if all(test(int(e["created"]), bound) for test, bound in limits)
                and (not types or e.get("type") in types)
            ),
            key=lambda e: (-int(e["created"]), str(e["id"])),
        )
        after = params.get("starting_after")
        if after is not None:
            ids = [str(e["id"]) for e in listed]
            listed = listed[ids.index(after) + 1 :] if after in ids else []
        size = min(int(params.get("limit", "10")), self.page_size)
        return 200, {
            "object": "list",
            "url": "/v1/events",
            "data": listed[:size],
            "has_more": len(listed) > size,
        }

    def _square_page(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /v2/events (SearchEvents): oldest first, `created_at.start_at` (inclusive)
        and `end_at` (exclusive), `event_types`, `cursor`."""
        query_filter = request.get("query", {}).get("filter", {})
        created = query_filter.get("created_at", {})
        start = _parse_time(created.get("start_at", ""))
        end = _parse_time(created.get("end_at", ""))
        types = set(query_filter.get("event_types") or ())

        def wanted(event: dict[str, Any]) -> bool:
            moment = _parse_time(event["created_at"])
            if moment is not None and start is not None and moment < start:
                return False
            if moment is not None and end is not None and moment >= end:
                return False
            return not types or event.get("type") in types

        listed = sorted(
            (e for e in self.square_events if wanted(e)), key=lambda e: str(e["created_at"])
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
            if (
                sandbox.delay_seconds > 0
                and self.command == "GET"
                and self.path.startswith(MERCADOPAGO_PREFIX + "/")
            ):
                # This request's own server thread waits: others are answered meanwhile.
                time.sleep(sandbox.delay_seconds)
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
