"""Posting the workload over loopback HTTP as providers do, and recording every answer.

Senders take the steps in order at a steady rate. A genuine delivery that is not
accepted (a 5xx, a 429, no answer) is retried as providers retry: signed afresh,
with a growing pause, until accepted or the retry window ends. A forgery is sent
once. A step that saves an order writes it to the shop's table, as the shop's
own code would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import urllib3
from hookline.simulate.send import TIMEOUT, Pacer, webhook_url
from hookline.simulate.signing import forged_secret, signature_headers, signed_body

from tests.soak.workload import SaveOrder, Send, Step

# A provider's retries, compressed: 0.25 s doubling to 4 s, for up to two minutes.
FIRST_PAUSE = 0.25
LONGEST_PAUSE = 4.0
RETRY_WINDOW = 120.0


@dataclass(frozen=True)
class Attempt:
    at: float  # seconds since the run started, when it was sent
    status: int | None  # None: no HTTP answer
    latency_ms: float


@dataclass
class Delivered:
    send: Send
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return any(a.status is not None and 200 <= a.status < 300 for a in self.attempts)

    @property
    def final(self) -> int | None:
        return self.attempts[-1].status if self.attempts else None


@dataclass
class Record:
    started: float
    delivered: list[Delivered] = field(default_factory=list)
    orders_saved: list[tuple[float, str]] = field(default_factory=list)
    seconds: float = 0.0


def _retryable(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


def send_all(
    base_url: str,
    steps: Sequence[Step],
    secret_for: Callable[[str], str],
    save_order: Callable[[SaveOrder], None],
    *,
    rate: float,
    senders: int,
    progress: Callable[[int], None] | None = None,
) -> Record:
    http = urllib3.PoolManager(maxsize=senders, block=True)
    pacer = Pacer(rate)
    record = Record(time.monotonic())
    lock = threading.Lock()
    done = [0]

    def post(send: Send) -> Attempt:
        event = send.event
        url, notification_url = webhook_url(base_url, event)
        secret = secret_for(event.provider)
        signed_with = forged_secret(secret) if send.forged == "wrong_secret" else secret
        # A tampered copy carries the signature of the genuine delivery it was
        # captured from, over the genuine parts: one of them no longer matches.
        signed = send.original or event
        headers = {
            **event.headers,
            **signature_headers(
                signed, signed_with, url=notification_url, timestamp=int(time.time())
            ),
        }
        started = time.monotonic()
        try:
            answer = http.request(
                "POST",
                url,
                body=signed_body(event, signed_with, signed=signed),
                headers=headers,
                timeout=TIMEOUT,
                retries=False,
            )
            status: int | None = answer.status
        except urllib3.exceptions.HTTPError:
            status = None
        return Attempt(started - record.started, status, (time.monotonic() - started) * 1000)

    def deliver(step: Step) -> None:
        pacer.wait()
        if isinstance(step, SaveOrder):
            save_order(step)
            with lock:
                record.orders_saved.append((time.monotonic() - record.started, step.order_id))
            return
        delivered = Delivered(step)
        pause = FIRST_PAUSE
        first = time.monotonic()
        while True:
            attempt = post(step)
            delivered.attempts.append(attempt)
            if step.forged or not _retryable(attempt.status):
                break
            if time.monotonic() - first > RETRY_WINDOW:
                break
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
        with lock:
            record.delivered.append(delivered)
            done[0] += 1
            count = done[0]
        if progress is not None:
            progress(count)

    with ThreadPoolExecutor(max_workers=senders) as pool:
        for future in [pool.submit(deliver, step) for step in steps]:
            future.result()
    record.seconds = time.monotonic() - record.started
    return record
