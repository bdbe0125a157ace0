"""Providers' event listings, for recovering events whose webhook never arrived.

Stripe: GET /v1/events, newest first, paged with `starting_after`, filtered by
`created[gte]` (events are kept 30 days). Square: POST /v2/events (SearchEvents),
paged with `cursor`, filtered by `created_at.start_at`. Both list the event
objects exactly as their webhooks deliver them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from hookline.clients.http import JsonHttpClient
from hookline.errors import ProviderApiUnavailable

STRIPE_API_URL = "https://api.stripe.com"
SQUARE_API_URL = "https://connect.squareup.com"
SQUARE_VERSION = "2024-10-17"
PAGE_SIZE = 100

# The reconciler has minutes, and pages through listings: wait out a 429.
RECONCILER_HTTP: dict[str, Any] = {
    "read_timeout": 10.0,
    "retries": 4,
    "backoff_factor": 0.5,
    "backoff_max": 20.0,
    "respect_retry_after": True,
}


class EventListing(Protocol):
    provider: str

    def since(self, start: datetime) -> Iterator[dict[str, Any]]:
        """Every event created at or after `start`, each as its webhook body."""


def _page_items(page: dict[str, Any], key: str, name: str) -> list[dict[str, Any]]:
    items = page.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ProviderApiUnavailable(f"{name} events API answered an unexpected page")
    return items


class StripeEvents:
    provider = "stripe"

    def __init__(self, api_key: Callable[[], str], base_url: str = STRIPE_API_URL) -> None:
        self._http = JsonHttpClient(
            "stripe", base_url, lambda: {"Authorization": f"Bearer {api_key()}"}, **RECONCILER_HTTP
        )

    def since(self, start: datetime) -> Iterator[dict[str, Any]]:
        params = {"created[gte]": str(int(start.timestamp())), "limit": str(PAGE_SIZE)}
        while True:
            page = self._http.get("v1", "events", params=params)
            events = _page_items(page, "data", "stripe")
            yield from events
            if not page.get("has_more") or not events:
                return
            params = {**params, "starting_after": str(events[-1]["id"])}


class SquareEvents:
    provider = "square"

    def __init__(self, access_token: Callable[[], str], base_url: str = SQUARE_API_URL) -> None:
        self._http = JsonHttpClient(
            "square",
            base_url,
            lambda: {"Authorization": f"Bearer {access_token()}", "Square-Version": SQUARE_VERSION},
            **RECONCILER_HTTP,
        )

    def since(self, start: datetime) -> Iterator[dict[str, Any]]:
        query = {
            "filter": {"created_at": {"start_at": start.astimezone(UTC).isoformat()}},
            "sort": {"field": "DEFAULT", "order": "ASC"},
        }
        cursor: str | None = None
        while True:
            body: dict[str, Any] = {"limit": PAGE_SIZE, "query": query}
            if cursor:
                body["cursor"] = cursor
            page = self._http.search("v2", "events", body=body)
            yield from _page_items(page, "events", "square")
            cursor = page.get("cursor")
            if not cursor:
                return
