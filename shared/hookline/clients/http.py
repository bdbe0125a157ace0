"""JSON over HTTP with timeouts and bounded, jittered retries, on urllib3 (in every Lambda).

The consumer's retries are short and few, and ignore Retry-After: a longer
outage is better waited out by SQS (the message comes back later) than by
sleeping in the invocation. The reconciler has minutes and pages through
listings, so it honours a provider's Retry-After (`respect_retry_after`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from hookline.errors import ConfigurationError, ProviderApiUnavailable, ResourceNotFound

RETRYABLE_STATUSES = (429, 500, 502, 503, 504)


class JsonHttpClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        headers: Callable[[], Mapping[str, str]],
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        retries: int = 2,
        backoff_factor: float = 0.2,
        backoff_max: float = 2.0,
        respect_retry_after: bool = False,
    ) -> None:
        self.name = name
        self._base_url = base_url.rstrip("/")
        self._headers = headers
        self._pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=urllib3.Retry(
                total=retries,
                backoff_factor=backoff_factor,
                backoff_max=backoff_max,
                backoff_jitter=backoff_factor,
                status_forcelist=RETRYABLE_STATUSES,
                # Only reads: a search by POST (Square's) is one too.
                allowed_methods={"GET", "POST"},
                respect_retry_after_header=respect_retry_after,
                raise_on_status=False,
            ),
        )

    def get(self, *segments: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET base/seg/seg (each segment URL-quoted) → the JSON object answered."""
        return self.request("GET", segments, params=params)

    def search(self, *segments: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a read-only query (retried like a GET) → the JSON object answered."""
        return self.request("POST", segments, body=body)

    def request(
        self,
        method: str,
        segments: tuple[str, ...],
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        path = "/".join(quote(segment, safe="") for segment in segments)
        query = f"?{urlencode(params)}" if params else ""
        try:
            response = self._pool.request(
                method,
                f"{self._base_url}/{path}{query}",
                headers={"Accept": "application/json", **self._headers()},
                json=body,
            )
        except urllib3.exceptions.HTTPError as error:
            raise ProviderApiUnavailable(
                f"{self.name} API unreachable: {type(error).__name__}"
            ) from error
        status = response.status
        if status in (401, 403):
            raise ConfigurationError(f"{self.name} API refused the credentials ({status})")
        if status == 404:
            raise ResourceNotFound(f"{self.name} API has no such resource")
        if status in RETRYABLE_STATUSES:
            raise ProviderApiUnavailable(f"{self.name} API answered {status}")
        if status >= 400:
            raise ResourceNotFound(f"{self.name} API refused the request ({status})")
        try:
            document = json.loads(response.data)
        except ValueError:
            raise ProviderApiUnavailable(f"{self.name} API answered invalid JSON") from None
        if not isinstance(document, dict):
            raise ProviderApiUnavailable(f"{self.name} API answered a non-object")
        return document
