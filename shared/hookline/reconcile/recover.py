"""Recovering events a provider sent but hookline never received.

Each run lists the provider's events since the last checkpoint (minus an
overlap, for events that become visible late) and enqueues every event id the
ledger lacks, marked as recovered. The queue's deduplication id is the same as
the webhook's, so an event whose webhook is merely late is queued once; the
ledger makes any later copy a no-op. Only event types a handler applies are
enqueued: a listing holds every event of the account.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from hookline.clients.events import EventListing
from hookline.database import Connection
from hookline.envelope import RECOVERED_HEADER, Envelope
from hookline.errors import HooklineError, MalformedEvent
from hookline.observability import count, logger
from hookline.providers import WebhookRequest, build_registry
from hookline.queue import EventQueue

T = TypeVar("T")


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class RecoveryResult:
    recovered: dict[str, int] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.recovered.values())


class Recoverer:
    def __init__(
        self,
        listings: Callable[[], Sequence[EventListing]],
        queue: EventQueue,
        handles: Callable[[str, str], bool],
        *,
        lookback: timedelta,
        overlap: timedelta = timedelta(minutes=10),
    ) -> None:
        self.listings = listings
        self.queue = queue
        self.handles = handles
        self.lookback = lookback
        self.overlap = overlap
        self._providers = build_registry()

    def run(
        self, connection: Connection, previous: Mapping[str, str], now: datetime
    ) -> RecoveryResult:
        result = RecoveryResult(checkpoints=dict(previous))
        try:
            listings = self.listings()
        except HooklineError as error:
            logger.warning("event recovery skipped", extra={"error": str(error)})
            count("RecoveryFailed", provider="all")
            result.failed.append("all")
            return result
        for listing in listings:
            provider = listing.provider
            checkpoint = previous.get(provider)
            start = (
                datetime.fromisoformat(checkpoint) - self.overlap
                if checkpoint
                else now - self.lookback
            )
            try:
                recovered = self._recover(connection, listing, start, now)
            except HooklineError as error:
                # The checkpoint stays: the next run lists this window again.
                logger.warning(
                    "event recovery failed", extra={"provider": provider, "error": str(error)}
                )
                count("RecoveryFailed", provider=provider)
                result.failed.append(provider)
                continue
            result.recovered[provider] = recovered
            # Everything created before the listing began has been seen.
            result.checkpoints[provider] = now.isoformat()
            if recovered:
                logger.warning(
                    "missed events recovered: webhooks are being lost upstream",
                    extra={"provider": provider, "recovered": recovered},
                )
                count("EventsRecovered", recovered, provider=provider)
        return result

    def _recover(
        self, connection: Connection, listing: EventListing, start: datetime, now: datetime
    ) -> int:
        provider = self._providers[listing.provider]
        recovered = 0
        for page in _chunks(listing.since(start), 100):
            envelopes = []
            for raw in page:
                body = json.dumps(raw, separators=(",", ":")).encode()
                try:
                    envelopes.append(provider.normalize(WebhookRequest(body=body), received_at=now))
                except MalformedEvent as error:
                    # One odd item must not stall the checkpoint for every other event.
                    logger.warning(
                        "listed event skipped",
                        extra={"provider": listing.provider, "error": str(error)},
                    )
            wanted = [e for e in envelopes if self.handles(e.provider, e.event_type)]
            known = {
                row["event_id"]
                for row in connection.execute(
                    "SELECT event_id FROM webhook_events WHERE provider = %s"
                    " AND event_id = ANY(%s)",
                    (listing.provider, [e.event_id for e in wanted]),
                )
            }
            for envelope in wanted:
                if envelope.event_id in known:
                    continue
                self.queue.send(_marked(envelope))
                recovered += 1
                logger.info(
                    "missed event enqueued",
                    extra={
                        "provider": envelope.provider,
                        "event_id": envelope.event_id,
                        "event_type": envelope.event_type,
                    },
                )
        return recovered


def _marked(envelope: Envelope) -> Envelope:
    return envelope.model_copy(update={"headers": {**envelope.headers, RECOVERED_HEADER: "true"}})


def latest_checkpoints(connection: Connection) -> dict[str, str]:
    row = connection.execute(
        "SELECT checkpoints FROM reconciliation_runs WHERE status = 'succeeded'"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    checkpoints: dict[str, Any] = row["checkpoints"] if row else {}
    return {str(k): str(v) for k, v in checkpoints.items()}
