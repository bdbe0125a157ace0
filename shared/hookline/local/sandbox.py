"""Provider APIs on 127.0.0.1, for what hookline fetches (no internet locally).

- Mercado Pago's, eSewa's, Khalti's and Mollie's events are thin: the consumer
  fetches Mercado Pago's GET /v1/payments/{id} (Bearer), eSewa's GET
  /api/epay/transaction/status/?product_code=&total_amount=&transaction_uuid=
  (no credential), Khalti's POST /epayment/lookup/ {"pidx"} (`Key <secret>`) and
  Mollie's GET /v2/payments/{id} (Bearer), each under its prefix (/mercadopago,
  /esewa, /khalti, /mollie: `api_urls` is what the consumer is pointed at).
  `hookline send` registers each payment first (POST /{provider}/_sandbox/payments
  with the answer to serve, a sandbox route, no provider's).
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
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MERCADOPAGO_PREFIX = "/mercadopago"
ESEWA_PREFIX = "/esewa"
KHALTI_PREFIX = "/khalti"
MOLLIE_PREFIX = "/mollie"
STRIPE_PREFIX = "/stripe"
SQUARE_PREFIX = "/square"
# The thin providers whose payments the sandbox serves, once registered.
THIN_PROVIDERS = ("mercadopago", "esewa", "khalti", "mollie")
# POST the answer to serve (the builders below make one) to register a payment.
REGISTER_TEMPLATE = "/{provider}/_sandbox/payments"
REGISTER_PATH = REGISTER_TEMPLATE.format(provider="mercadopago")
ESEWA_STATUS_PATH = "/api/epay/transaction/status/"
KHALTI_LOOKUP_PATH = "/epayment/lookup/"
MOLLIE_PAYMENTS_PATH = "/v2/payments/"
# Khalti answers these lookups with HTTP 400, the status in the body (documented).
KHALTI_400_STATUSES = frozenset({"Expired", "User canceled"})
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


def register_path(provider: str) -> str:
    """Where `provider`'s payments are registered (POST the answer to serve)."""
    return REGISTER_TEMPLATE.format(provider=provider)


def esewa_status(
    transaction_uuid: str,
    status: str,
    total_amount: str,
    *,
    product_code: str = "EPAYTEST",
    ref_id: str | None = "0007G36",
) -> dict[str, Any]:
    """eSewa's status API answer (developer.esewa.com.np/pages/Epay, "Status Check"):
    total_amount a JSON number (100.0), ref_id null until eSewa has a transaction."""
    return {
        "product_code": product_code,
        "transaction_uuid": transaction_uuid,
        "total_amount": float(total_amount),
        "status": status,
        "ref_id": ref_id if status not in ("PENDING", "NOT_FOUND") else None,
    }


def khalti_lookup(
    pidx: str,
    status: str,
    total_amount: int,
    *,
    transaction_id: str | None = "GFq9PFS7b2iYvL8Lir9oXe",
    fee: int = 0,
) -> dict[str, Any]:
    """Khalti's POST /epayment/lookup/ answer (docs.khalti.com, "Payment Verification
    (Lookup)"): total_amount in paisa; transaction_id null until paid."""
    paid = status in ("Completed", "Refunded", "Partially Refunded")
    return {
        "pidx": pidx,
        "total_amount": total_amount,
        "status": status,
        "transaction_id": transaction_id if paid else None,
        "fee": fee,
        "refunded": status in ("Refunded", "Partially Refunded"),
    }


def mollie_payment(
    payment_id: str,
    status: str,
    value: str,
    *,
    currency: str = "EUR",
    order_id: str | None = None,
    refunded: str | None = None,
    charged_back: str | None = None,
) -> dict[str, Any]:
    """The fields of Mollie's GET /v2/payments/{id} that hookline reads, shaped as
    documented (docs.mollie.com, "Get payment"): amounts as {"currency", "value"}
    strings with the currency's decimals; amountRefunded once refunds exist."""
    answer: dict[str, Any] = {
        "resource": "payment",
        "id": payment_id,
        "mode": "test",
        "createdAt": "2026-11-20T10:00:00+00:00",
        "status": status,
        "isCancelable": status == "open",
        "amount": {"currency": currency, "value": value},
        "description": f"Order {order_id}" if order_id else "Payment",
        "method": "ideal",
        "metadata": {"order_id": order_id} if order_id is not None else None,
        "profileId": "pfl_QkEhN94Ba",
        "sequenceType": "oneoff",
        "redirectUrl": "https://shop.example/return",
        "webhookUrl": "https://hooks.example/webhooks/mollie",
        "_links": {
            "self": {
                "href": f"https://api.mollie.com/v2/payments/{payment_id}",
                "type": "application/hal+json",
            }
        },
    }
    if status == "paid":
        answer["paidAt"] = "2026-11-20T10:01:00+00:00"
    if refunded is not None:
        answer["amountRefunded"] = {"currency": currency, "value": refunded}
    if charged_back is not None:
        answer["amountChargedBack"] = {"currency": currency, "value": charged_back}
    return answer


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class ProviderSandbox:
    """Answers like api.mercadopago.com, api.stripe.com, Square's API, eSewa's status
    API, Khalti's lookup and api.mollie.com, each under its prefix (/mercadopago,
    /stripe, /square, /esewa, /khalti, /mollie), each with the credential its
    provider requires (eSewa's status API takes none)."""

    mercadopago_token: str | None
    stripe_api_key: str | None = None
    square_access_token: str | None = None
    # Mercado Pago's payments, by id (as GET /v1/payments/{id} answers them).
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The merchant's secret key (`Authorization: Key <it>`) and Mollie's API key (Bearer).
    khalti_secret_key: str | None = None
    mollie_api_key: str | None = None
    # eSewa's status answers by transaction_uuid, Khalti's lookups by pidx, Mollie's
    # payments by id.
    esewa_payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    khalti_payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    mollie_payments: dict[str, dict[str, Any]] = field(default_factory=dict)
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
    def api_urls(self) -> dict[str, str]:
        """The base URL the consumer uses for each thin provider (`{PROVIDER}_API_URL`)."""
        return {provider: f"{self.url}/{provider}" for provider in THIN_PROVIDERS}

    def _registry(self, provider: str) -> tuple[dict[str, dict[str, Any]], str]:
        """Where `provider`'s registered answers live, and the field that keys them."""
        return {
            "mercadopago": (self.payments, "id"),
            "esewa": (self.esewa_payments, "transaction_uuid"),
            "khalti": (self.khalti_payments, "pidx"),
            "mollie": (self.mollie_payments, "id"),
        }[provider]

    def _register(self, provider: str, body: bytes) -> tuple[int, dict[str, Any]]:
        payment = json.loads(body or b"{}")
        store, key = self._registry(provider)
        if not isinstance(payment, dict) or payment.get(key) in (None, ""):
            return 400, {"message": f"expected a JSON object with {key!r}"}
        store[str(payment[key])] = payment
        return 201, payment

    @property
    def square_url(self) -> str:
        return self.url + SQUARE_PREFIX

    def answer(
        self, method: str, path: str, authorization: str | None, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        for provider in THIN_PROVIDERS:
            if method == "POST" and path == register_path(provider):
                return self._register(provider, body)
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
        split = urlsplit("/" + rest)
        if prefix == "esewa":
            # Public: eSewa's answers are keyed by what the merchant's signed callback says.
            return self._esewa(method, split.path, parse_qsl(split.query))
        if prefix == "khalti":
            if self.khalti_secret_key is None or authorization != f"Key {self.khalti_secret_key}":
                return 401, {"detail": "Invalid token.", "status_code": 401}
            return self._khalti(method, split.path, body)
        if prefix == "mollie":
            if self.mollie_api_key is None or authorization != f"Bearer {self.mollie_api_key}":
                return 401, {
                    "status": 401,
                    "title": "Unauthorized Request",
                    "detail": "Missing authentication, or failed to authenticate",
                }
            return self._mollie(method, split.path)
        token = {
            "mercadopago": self.mercadopago_token,
            "stripe": self.stripe_api_key,
            "square": self.square_access_token,
        }.get(prefix)
        if token is None or authorization != f"Bearer {token}":
            return 401, {"message": "invalid access token", "status": 401}
        if prefix == "mercadopago" and method == "GET":
            payment_id = split.path.removeprefix("/v1/payments/")
            if payment_id in self.payments:
                return 200, self.payments[payment_id]
        if prefix == "stripe" and method == "GET" and split.path == "/v1/events":
            return self._stripe_page(parse_qsl(split.query))
        if prefix == "square" and method == "POST" and split.path == "/v2/events":
            return 200, self._square_page(json.loads(body or b"{}"))
        return 404, {"message": "not found", "error": "not_found", "status": 404}

    def _esewa(
        self, method: str, path: str, query: list[tuple[str, str]]
    ) -> tuple[int, dict[str, Any]]:
        """GET the status of (product_code, total_amount, transaction_uuid); one eSewa does
        not hold under all three is NOT_FOUND (a 200, as documented)."""
        if method != "GET" or path != ESEWA_STATUS_PATH:
            return 404, {"code": 0, "error_message": "not found"}
        params = dict(query)
        uuid = params.get("transaction_uuid", "")
        answer = self.esewa_payments.get(uuid)
        if answer is not None and (
            answer.get("product_code") == params.get("product_code")
            and _same_number(answer.get("total_amount"), params.get("total_amount"))
        ):
            return 200, answer
        return 200, esewa_status(
            uuid,
            "NOT_FOUND",
            params.get("total_amount") or "0",
            product_code=params.get("product_code", ""),
        )

    def _khalti(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """POST {"pidx"}: the lookup; an unknown pidx is Khalti's documented "Not found."."""
        if method != "POST" or path != KHALTI_LOOKUP_PATH:
            return 404, {"detail": "Not found.", "status_code": 404}
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("pidx"), str):
            return 400, {"pidx": ["This field is required."], "error_key": "validation_error"}
        answer = self.khalti_payments.get(request["pidx"])
        if answer is None:
            return 404, {"detail": "Not found.", "error_key": "validation_error"}
        return (400 if answer.get("status") in KHALTI_400_STATUSES else 200), answer

    def _mollie(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        payment_id = path.removeprefix(MOLLIE_PAYMENTS_PATH)
        if method == "GET" and path.startswith(MOLLIE_PAYMENTS_PATH):
            answer = self.mollie_payments.get(payment_id)
            if answer is not None:
                return 200, answer
        return 404, {
            "status": 404,
            "title": "Not Found",
            "detail": f"No payment exists with token {payment_id}.",
        }

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


def _same_number(first: Any, second: Any) -> bool:
    try:
        return Decimal(str(first)) == Decimal(str(second))
    except InvalidOperation:
        return False


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
    # A short poll: shutdown waits for it, and tests start and stop a sandbox per test.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    sandbox.url = f"http://{host}:{server.server_address[1]}"
    try:
        yield sandbox
    finally:
        server.shutdown()
        server.server_close()
