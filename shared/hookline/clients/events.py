"""Providers' event listings, for recovering events whose webhook never arrived.

Stripe: GET /v1/events, newest first, paged with `starting_after`, filtered by
`created[gte]`/`created[lt]` and up to 20 `types[]` per request (events are kept
30 days). Square: POST /v2/events (SearchEvents), paged with `cursor`, filtered
by `created_at.start_at`/`end_at` and `event_types` (kept 28 days). Both list
the event objects exactly as their webhooks deliver them.

A listing covers one time window and only the event types asked for, a page at
a time, so its caller can record progress between windows and stop before its
deadline: no page is asked for with less than `PAGE_SECONDS` left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from hookline.clients.http import JsonHttpClient
from hookline.deadline import Deadline
from hookline.errors import ProviderApiUnavailable

STRIPE_API_URL = "https://api.stripe.com"
SQUARE_API_URL = "https://connect.squareup.com"
SQUARE_VERSION = "2024-10-17"
PAGE_SIZE = 100
# Stripe's `types[]` takes at most 20 names: more are listed in several passes.
STRIPE_MAX_TYPES = 20
# Less than this left before the deadline: ask for no further page (the call and
# enqueueing what it lists must fit in what remains).
PAGE_SECONDS = 5.0

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

    def pages(
        self, start: datetime, end: datetime, types: Sequence[str], deadline: Deadline
    ) -> Iterator[list[Any]]:
        """Events created in [start, end) whose type is one of `types`, a page at a time.

        Each item is the event as its webhook delivers it, unchecked (the caller
        normalizes each and sets aside what does not). Raises OutOfTime rather
        than ask for a page with less than PAGE_SECONDS left before `deadline`,
        ProviderApiUnavailable/ConfigurationError when the API fails.
        """


def _page_items(page: dict[str, Any], key: str, name: str) -> list[Any]:
    items = page.get(key, [])
    if not isinstance(items, list):
        raise ProviderApiUnavailable(f"{name} events API answered an unexpected page")
    return items


def _seconds(moment: datetime) -> str:
    return str(int(moment.timestamp()))


def _batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for offset in range(0, len(items), size):
        yield list(items[offset : offset + size])


class StripeEvents:
    provider = "stripe"

    def __init__(self, api_key: Callable[[], str], base_url: str = STRIPE_API_URL) -> None:
        self._http = JsonHttpClient(
            "stripe", base_url, lambda: {"Authorization": f"Bearer {api_key()}"}, **RECONCILER_HTTP
        )

    def pages(
        self, start: datetime, end: datetime, types: Sequence[str], deadline: Deadline
    ) -> Iterator[list[Any]]:
        window = [("created[gte]", _seconds(start)), ("created[lt]", _seconds(end))]
        for names in _batches(sorted(set(types)), STRIPE_MAX_TYPES):
            params = [*window, ("limit", str(PAGE_SIZE)), *(("types[]", name) for name in names)]
            after: list[tuple[str, str]] = []
            while True:
                deadline.require(PAGE_SECONDS, "list the next page of stripe events")
                page = self._http.get("v1", "events", params=params + after, deadline=deadline)
                events = _page_items(page, "data", "stripe")
                yield events
                if not page.get("has_more") or not events:
                    break
                last = events[-1]
                if not isinstance(last, dict) or not isinstance(last.get("id"), str):
                    raise ProviderApiUnavailable("stripe events page ends without an event id")
                after = [("starting_after", last["id"])]


class SquareEvents:
    provider = "square"

    def __init__(self, access_token: Callable[[], str], base_url: str = SQUARE_API_URL) -> None:
        self._http = JsonHttpClient(
            "square",
            base_url,
            lambda: {"Authorization": f"Bearer {access_token()}", "Square-Version": SQUARE_VERSION},
            **RECONCILER_HTTP,
        )

    def pages(
        self, start: datetime, end: datetime, types: Sequence[str], deadline: Deadline
    ) -> Iterator[list[Any]]:
        query = {
            "filter": {
                "event_types": sorted(set(types)),
                "created_at": {
                    "start_at": start.astimezone(UTC).isoformat(),
                    "end_at": end.astimezone(UTC).isoformat(),
                },
            },
            "sort": {"field": "DEFAULT", "order": "ASC"},
        }
        cursor: str | None = None
        while True:
            body: dict[str, Any] = {"limit": PAGE_SIZE, "query": query}
            if cursor:
                body["cursor"] = cursor
            deadline.require(PAGE_SECONDS, "list the next page of square events")
            page = self._http.search("v2", "events", body=body, deadline=deadline)
            yield _page_items(page, "events", "square")
            cursor = page.get("cursor")
            if not cursor:
                return
            if not isinstance(cursor, str):
                raise ProviderApiUnavailable("square events API answered an unexpected cursor")
