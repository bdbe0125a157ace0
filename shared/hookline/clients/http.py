"""JSON over HTTP with timeouts and bounded, jittered retries, on urllib3 (in every Lambda).

The consumer's retries are short and few, and ignore Retry-After: a longer
outage is better waited out by SQS (the message comes back later) than by
sleeping in the invocation. The reconciler has minutes and pages through
listings, so it honours a provider's Retry-After (`respect_retry_after`).

A call may carry a `Deadline`: its timeouts and retries are cut to fit the time
left, and a call that fails only because they were cut raises OutOfTime (hand
the work back) rather than blaming the provider.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from hookline.deadline import Deadline
from hookline.errors import ConfigurationError, OutOfTime, ProviderApiUnavailable, ResourceNotFound

RETRYABLE_STATUSES = (429, 500, 502, 503, 504)
# The one verdict an API gives about the resource itself: it does not exist.
NOT_FOUND_STATUSES = (404, 410)
# Less than this left: not worth starting a call.
MIN_CALL_SECONDS = 1.0
# The largest answer read; a provider API's JSON objects are far smaller.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024

# Query parameters: a mapping, or pairs when a name repeats (Stripe's `types[]`).
Params = Mapping[str, str] | Sequence[tuple[str, str]]


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
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._retries = retries
        self._backoff_max = backoff_max
        self._retry = urllib3.Retry(
            total=retries,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_factor,
            status_forcelist=RETRYABLE_STATUSES,
            # Only reads: a search by POST (Square's) is one too.
            allowed_methods={"GET", "POST"},
            respect_retry_after_header=respect_retry_after,
            raise_on_status=False,
        )
        self._pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=self._retry,
        )

    def get(
        self,
        *segments: str,
        params: Params | None = None,
        deadline: Deadline | None = None,
        answers: Collection[int] = (),
    ) -> dict[str, Any]:
        """GET base/seg/seg (each segment URL-quoted) → the JSON object answered."""
        return self.request("GET", segments, params=params, deadline=deadline, answers=answers)

    def search(
        self,
        *segments: str,
        body: Mapping[str, Any],
        deadline: Deadline | None = None,
        answers: Collection[int] = (),
    ) -> dict[str, Any]:
        """POST a read-only query (retried like a GET) → the JSON object answered."""
        return self.request("POST", segments, body=body, deadline=deadline, answers=answers)

    def _fit(self, deadline: Deadline) -> tuple[urllib3.Timeout, urllib3.Retry, bool]:
        """Timeouts and retries that end before `deadline`, and whether they were cut."""
        budget = deadline.remaining()
        if budget < MIN_CALL_SECONDS:
            raise OutOfTime(f"not enough time left to call the {self.name} API")
        attempt = self._connect_timeout + self._read_timeout
        attempts = min(self._retries + 1, max(1, int(budget // (attempt + self._backoff_max))))
        timeout = urllib3.Timeout(
            connect=min(self._connect_timeout, budget),
            read=min(self._read_timeout, budget),
            total=budget / attempts,
        )
        cut = attempts < self._retries + 1 or budget / attempts < attempt
        # A Retry-After longer than the time left would sleep past it: our own
        # (bounded) backoff is what fits the budget.
        retry = self._retry.new(total=attempts - 1, respect_retry_after_header=False)
        return timeout, retry, cut

    def request(
        self,
        method: str,
        segments: tuple[str, ...],
        *,
        params: Params | None = None,
        body: Mapping[str, Any] | None = None,
        deadline: Deadline | None = None,
        answers: Collection[int] = (),
    ) -> dict[str, Any]:
        """The JSON object answered; `answers`: error statuses whose body is the answer
        (Khalti states an expired payment with a 400), not a refusal."""
        path = "/".join(quote(segment, safe="") for segment in segments)
        query = f"?{urlencode(params)}" if params else ""
        options: dict[str, Any] = {}
        cut = False
        if deadline is not None and deadline.unbounded:
            deadline = None
        if deadline is not None:
            options["timeout"], options["retries"], cut = self._fit(deadline)
        try:
            response = self._pool.request(
                method,
                f"{self._base_url}/{path}{query}",
                headers={"Accept": "application/json", **self._headers()},
                json=body,
                preload_content=False,
                **options,
            )
            try:
                data = self._read(response, deadline)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as error:
            if cut:
                # The provider never had its full timeouts: our time ran out, not its.
                raise OutOfTime(f"{self.name} API call did not fit the time left") from error
            raise ProviderApiUnavailable(
                f"{self.name} API unreachable: {type(error).__name__}"
            ) from error
        status = response.status
        if status in answers:
            return self._document(data)
        if status in (401, 403):
            raise ConfigurationError(f"{self.name} API refused the credentials ({status})")
        if status in NOT_FOUND_STATUSES:
            raise ResourceNotFound(f"{self.name} API has no such resource")
        if status >= 400:
            # Only "no such resource" is a verdict about the event. Any other refusal
            # (a 400 from a WAF or a proxy, a 422 after an API change) may pass: the
            # event waits in SQS rather than being parked or ignored for good.
            raise ProviderApiUnavailable(f"{self.name} API answered {status}")
        return self._document(data)

    def _document(self, data: bytes) -> dict[str, Any]:
        try:
            document = json.loads(data)
        except ValueError:
            raise ProviderApiUnavailable(f"{self.name} API answered invalid JSON") from None
        if not isinstance(document, dict):
            raise ProviderApiUnavailable(f"{self.name} API answered a non-object")
        return document

    def _read(self, response: urllib3.BaseHTTPResponse, deadline: Deadline | None) -> bytes:
        """The answer's body, read in chunks: a timeout bounds each socket read, not a
        body that trickles in, so the deadline is checked between chunks."""
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read1(_CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise ProviderApiUnavailable(f"{self.name} API answered more than expected")
            if deadline is not None and deadline.remaining() <= 0:
                raise OutOfTime(f"{self.name} API answer did not arrive in the time left")
            chunks.append(chunk)
        return b"".join(chunks)
