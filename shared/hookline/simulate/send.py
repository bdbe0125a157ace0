"""Posting simulated events like a provider: one, or a load with a summary.

Each delivery is signed when it leaves, so a slow run never sends a stale
timestamp and a duplicate is signed afresh, as providers sign their retries.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlencode

import urllib3

from hookline.simulate.events import SimulatedEvent, Subject
from hookline.simulate.signing import forged_secret, signature_headers, signed_body

TIMEOUT = urllib3.Timeout(connect=5.0, read=35.0)


@dataclass(frozen=True)
class Answer:
    event: SimulatedEvent
    status: int | None  # None: no HTTP answer (connection refused, timeout)
    latency_ms: float
    error: str | None = None
    # The id the receiver answered with: for Khalti and Mollie, whose deliveries are
    # each their own event, the only place the ledger's id is known.
    event_id: str | None = None

    @property
    def ledger_id(self) -> str:
        return self.event_id or self.event.event_id


def plan(
    lifecycles: Sequence[Sequence[SimulatedEvent]],
    *,
    duplicates: int = 0,
    shuffle: bool = False,
    rng: random.Random | None = None,
) -> list[SimulatedEvent]:
    """Deliveries in sending order: each event 1 + `duplicates` times.

    Without shuffle, events go in lifecycle order with each retry right after
    its original; with it, everything (retries included) in random order.
    """
    deliveries = [event for cycle in lifecycles for event in cycle for _ in range(1 + duplicates)]
    if shuffle:
        (rng or random.Random()).shuffle(deliveries)
    return deliveries


class Pacer:
    """At most `rate` sends per second across all threads."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            slot = max(self._next, time.monotonic())
            self._next = slot + self.interval
        time.sleep(max(0.0, slot - time.monotonic()))


# Thin providers: the consumer applies what their API answers (the local stack's sandbox).
THIN_PROVIDERS = ("mercadopago", "esewa", "khalti", "mollie")


def register_sandbox_payments(
    sandbox_url: str,
    provider: str,
    subjects: Sequence[Subject],
    *,
    database_url: str | None = None,
    schema: str = "hookline",
) -> None:
    """Put each subject's payment where the local stack's consumer will fetch it
    (mercadopago, esewa, khalti, mollie), settled: approved, COMPLETE, Completed, paid.

    Khalti's lookup names no order, so each pidx is first bound to its order as a
    shop does when it initiates the payment (hookline.payments.expect_payment), in
    the local stack's database (`database_url`).
    """
    from hookline.local.sandbox import (
        esewa_status,
        khalti_lookup,
        mercadopago_payment,
        mollie_payment,
        register_path,
    )

    if provider == "khalti" and database_url is not None:
        import psycopg

        from hookline.payments import expect_payment

        with psycopg.connect(database_url, autocommit=True) as connection:
            for subject in subjects:
                if subject.order_id is not None:
                    expect_payment(
                        connection,
                        "khalti",
                        str(subject.ids["khalti"]),
                        subject.order_id,
                        schema=schema,
                    )
    http = urllib3.PoolManager()
    for subject in subjects:
        payment_id = str(subject.ids[provider])
        rupees = f"{subject.amount / 100:.2f}"
        if provider == "mercadopago":
            answer = mercadopago_payment(
                payment_id,
                "approved",
                rupees,
                currency=subject.currency,
                external_reference=subject.order_id,
            )
        elif provider == "esewa":
            # Asked with the signed total_amount (a float's text, e.g. 1500.5): same number.
            answer = esewa_status(payment_id, "COMPLETE", rupees)
        elif provider == "khalti":
            answer = khalti_lookup(payment_id, "Completed", subject.amount)
        elif provider == "mollie":
            answer = mollie_payment(
                payment_id,
                "paid",
                rupees,
                currency=subject.currency,
                order_id=subject.order_id,
            )
        else:
            raise ValueError(f"{provider} has no sandbox payments")
        response = http.request(
            "POST",
            sandbox_url + register_path(provider),
            json=answer,
            timeout=TIMEOUT,
            retries=False,
        )
        if response.status != 201:
            raise RuntimeError(f"the provider sandbox refused a payment: {response.status}")


def webhook_url(base_url: str, event: SimulatedEvent) -> tuple[str, str]:
    """(the URL posted to, the notification URL a provider signs: no query)."""
    endpoint = f"{base_url.rstrip('/')}/webhooks/{event.provider}"
    query = f"?{urlencode(dict(event.query))}" if event.query else ""
    return endpoint + query, endpoint


def deliver_one(
    http: urllib3.PoolManager, base_url: str, event: SimulatedEvent, secret: str
) -> Answer:
    url, notification_url = webhook_url(base_url, event)
    headers = {
        **event.headers,
        **signature_headers(event, secret, url=notification_url, timestamp=int(time.time())),
    }
    started = time.monotonic()
    try:
        response = http.request(
            "POST",
            url,
            body=signed_body(event, secret),
            headers=headers,
            timeout=TIMEOUT,
            retries=False,
        )
    except urllib3.exceptions.HTTPError as error:
        return Answer(event, None, (time.monotonic() - started) * 1000, type(error).__name__)
    return Answer(
        event, response.status, (time.monotonic() - started) * 1000, event_id=_answered_id(response)
    )


def _answered_id(response: urllib3.BaseHTTPResponse) -> str | None:
    try:
        answered = json.loads(response.data)
    except ValueError:
        return None
    event_id = answered.get("event_id") if isinstance(answered, dict) else None
    return event_id if isinstance(event_id, str) else None


@dataclass
class Summary:
    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def by_status(self) -> Counter[str]:
        return Counter(
            str(a.status) if a.status is not None else str(a.error) for a in self.answers
        )

    def percentile(self, fraction: float) -> float:
        ordered = sorted(a.latency_ms for a in self.answers if a.status is not None)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def ok(self) -> bool:
        return all(a.status is not None and 200 <= a.status < 300 for a in self.answers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": len(self.answers),
            "seconds": round(self.seconds, 3),
            "answers": dict(sorted(self.by_status.items())),
            "latency_ms": {
                name: round(self.percentile(q), 1)
                for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
            },
            "events": [
                {
                    "provider": a.event.provider,
                    "event_type": a.event.event_type,
                    "event_id": a.ledger_id,
                    "status": a.status,
                }
                for a in self.answers
            ],
        }

    def text(self) -> str:
        answers = ", ".join(f"{status}: {n}" for status, n in sorted(self.by_status.items()))
        rate = len(self.answers) / self.seconds if self.seconds else 0.0
        return (
            f"sent {len(self.answers)} in {self.seconds:.1f}s ({rate:.0f}/s); answers {answers}; "
            f"latency p50 {self.percentile(0.5):.0f} ms, p90 {self.percentile(0.9):.0f} ms, "
            f"p99 {self.percentile(0.99):.0f} ms, max {self.percentile(1.0):.0f} ms"
        )


class Progress:
    """A one-line bar on a terminal; silent anywhere else."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = total > 1 and self.stream.isatty()
        self.done = 0
        self._lock = threading.Lock()

    def step(self, answer: Answer) -> None:
        with self._lock:
            self.done += 1
            if not self.enabled:
                return
            width = 30
            filled = int(width * self.done / self.total)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} last {answer.status}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


def deliver(
    base_url: str,
    deliveries: Sequence[SimulatedEvent],
    secret_for: Callable[[str], str],
    *,
    rate: float | None = None,
    concurrency: int = 4,
    forge: bool = False,
    progress: Progress | None = None,
) -> Summary:
    """Post every delivery; `secret_for(provider)` gives the signing secret."""
    http = urllib3.PoolManager(maxsize=max(1, concurrency))
    pacer = Pacer(rate)
    summary = Summary()
    lock = threading.Lock()

    def send(event: SimulatedEvent) -> None:
        secret = secret_for(event.provider)
        pacer.wait()
        answer = deliver_one(http, base_url, event, forged_secret(secret) if forge else secret)
        with lock:
            summary.answers.append(answer)
        if progress is not None:
            progress.step(answer)

    started = time.monotonic()
    if concurrency <= 1:
        for event in deliveries:
            send(event)
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(send, deliveries))
    summary.seconds = time.monotonic() - started
    return summary
