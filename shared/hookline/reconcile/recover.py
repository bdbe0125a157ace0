"""Recovering events a provider sent but hookline never received.

Each provider's window runs from its checkpoint minus `overlap` (events become
visible in a listing late), or from `lookback` ago on a first run, to
`now - grace - queue lag`: a younger event may still be on its way as a
webhook, or waiting in EventsQueue with no ledger row yet, and is not missed.
The window is walked oldest first in `chunk`-sized sub-windows, listing only
the event types a handler applies. Once a sub-window is listed whole and its
missing events are enqueued, its end is saved as the checkpoint at once, so a
run cut short (by its deadline, a crash or the Lambda timeout) keeps every
sub-window it finished and the next run goes on from there. Listing and
enqueueing stop PAGE_SECONDS before the deadline; a sub-window whose listing
was cut short enqueues nothing (its events are enqueued once it is listed
whole), and one too dense for a whole run is halved for the next runs.

Missing means the ledger has no row for (provider, event id). Each is enqueued
marked as recovered; its deduplication id is the webhook's, so an event whose
webhook is merely late is queued once, and the ledger makes any later copy a
no-op. Whether a recovered copy was really missed is the consumer's to say (it
counts EventsRecovered when that copy is the one that applies); a run counts
what it enqueued (RecoveryEnqueued).

One listed item that cannot be used (it does not normalize, or is too large to
queue) is set aside with its reason (RecoverySkipped) and does not hold the
checkpoint back. A provider API or queue failure stops that provider until the
next run (RecoveryFailed), at its last finished sub-window; the others go on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hookline.clients.events import PAGE_SECONDS, EventListing
from hookline.database import Connection
from hookline.deadline import Deadline
from hookline.envelope import RECOVERED_HEADER, Envelope
from hookline.errors import HooklineError, MalformedEvent, OutOfTime, PayloadTooLarge
from hookline.metric_names import Metric
from hookline.observability import count, logger
from hookline.providers import Provider, WebhookRequest, build_registry
from hookline.queue import EventQueue

# A provider whose first sub-window did not fit a run lists half as much next
# run (for the container's life), never less than this.
MIN_CHUNK = timedelta(minutes=1)

SaveCheckpoint = Callable[[str, str], None]


@dataclass
class RecoveryResult:
    checkpoints: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    # Per provider: missing events put on the queue by this run.
    enqueued: dict[str, int] = field(default_factory=dict)
    # Listed items set aside (each logged with its reason).
    skipped: int = 0

    @property
    def total(self) -> int:
        return sum(self.enqueued.values())


class _Cut(Exception):
    """A sub-window stopped before the deadline, after listing `pages` of it."""

    def __init__(self, pages: int, reason: OutOfTime) -> None:
        super().__init__(str(reason))
        self.pages = pages


class Recoverer:
    def __init__(
        self,
        listings: Callable[[], Sequence[EventListing]],
        queue: EventQueue,
        handled_types: Callable[[str], Sequence[str]],
        *,
        lookback: timedelta,
        overlap: timedelta = timedelta(minutes=10),
        grace: timedelta = timedelta(minutes=10),
        chunk: timedelta = timedelta(hours=1),
        queue_lag: Callable[[], timedelta] = lambda: timedelta(0),
    ) -> None:
        if chunk < MIN_CHUNK:
            raise ValueError(f"chunk must be at least {MIN_CHUNK}")
        self.listings = listings
        self.queue = queue
        self.handled_types = handled_types
        self.lookback = lookback
        self.overlap = overlap
        self.grace = grace
        self.chunk = chunk
        self.queue_lag = queue_lag
        self._providers = build_registry()
        # Smaller sub-windows for a provider whose sub-window did not fit a run.
        self._chunks: dict[str, timedelta] = {}

    def run(
        self,
        connection: Connection,
        previous: Mapping[str, str],
        now: datetime,
        deadline: Deadline,
        save_checkpoint: SaveCheckpoint,
    ) -> RecoveryResult:
        result = RecoveryResult(checkpoints=dict(previous))
        try:
            listings = [
                (listing, types)
                for listing in self.listings()
                if (types := sorted(set(self.handled_types(listing.provider))))
            ]
        except HooklineError as error:
            logger.warning("event recovery skipped", extra={"error": str(error)})
            count(Metric.RECOVERY_FAILED, provider="all")
            result.failed.append("all")
            return result
        if not listings:
            return result
        lag = max(self.queue_lag(), timedelta(0))
        end = _whole_seconds(now - self.grace - lag)
        for listing, types in listings:
            # One provider after the other, each with all the time left: every
            # call is fitted to it, and a smaller share would leave no room for
            # the retry after a 429.
            self._recover(
                connection, listing, types, previous, now, end, deadline, save_checkpoint, result
            )
            logger.info(
                "event recovery done",
                extra={
                    "provider": listing.provider,
                    "enqueued": result.enqueued.get(listing.provider, 0),
                    "checkpoint": result.checkpoints.get(listing.provider),
                    "window_end": end.isoformat(),
                    "failed": listing.provider in result.failed,
                },
            )
        return result

    def _recover(
        self,
        connection: Connection,
        listing: EventListing,
        types: list[str],
        previous: Mapping[str, str],
        now: datetime,
        end: datetime,
        deadline: Deadline,
        save_checkpoint: SaveCheckpoint,
        result: RecoveryResult,
    ) -> None:
        provider = listing.provider
        result.enqueued.setdefault(provider, 0)
        checkpoint = _parse_checkpoint(provider, previous.get(provider))
        start = _whole_seconds(checkpoint - self.overlap if checkpoint else now - self.lookback)
        if end <= (checkpoint or start):
            logger.info(
                "event recovery is up to date",
                extra={"provider": provider, "checkpoint": previous.get(provider)},
            )
            return
        size = self._chunks.get(provider, self.chunk)
        window_start = start
        while window_start < end:
            window_end = min(window_start + size, end)
            try:
                missing = self._list(
                    connection, listing, types, window_start, window_end, now, deadline, result
                )
                self._enqueue(provider, missing, deadline, result)
            except _Cut as cut:
                if window_start == start and cut.pages > 0:
                    # Not even one sub-window fitted: list half as much next run.
                    self._chunks[provider] = max(MIN_CHUNK, (window_end - window_start) / 2)
                logger.info(
                    "event recovery paused before the deadline",
                    extra={
                        "provider": provider,
                        "window_start": window_start.isoformat(),
                        "window_end": window_end.isoformat(),
                        "checkpoint": result.checkpoints.get(provider),
                        "reason": str(cut),
                    },
                )
                count(Metric.RECOVERY_PAUSED, provider=provider)
                return
            except HooklineError as error:
                # The checkpoint stays at the last finished sub-window.
                logger.warning(
                    "event recovery failed",
                    extra={
                        "provider": provider,
                        "window_start": window_start.isoformat(),
                        "error": str(error),
                    },
                )
                count(Metric.RECOVERY_FAILED, provider=provider)
                result.failed.append(provider)
                return
            if checkpoint is None or window_end > checkpoint:
                save_checkpoint(provider, window_end.isoformat())
                result.checkpoints[provider] = window_end.isoformat()
                checkpoint = window_end
            window_start = window_end
        # Caught up: the next windows are short whatever the chunk.
        self._chunks.pop(provider, None)

    def _list(
        self,
        connection: Connection,
        listing: EventListing,
        types: list[str],
        start: datetime,
        end: datetime,
        now: datetime,
        deadline: Deadline,
        result: RecoveryResult,
    ) -> dict[str, Envelope]:
        """The events of [start, end) the ledger lacks, by event id, once listed whole."""
        provider = listing.provider
        normalizer = self._providers[provider]
        missing: dict[str, Envelope] = {}
        pages = 0
        try:
            deadline.require(PAGE_SECONDS, f"list {provider} events")
            for page in listing.pages(start, end, types, deadline):
                pages += 1
                envelopes = [
                    envelope
                    for raw in page
                    if (envelope := self._normalize(normalizer, provider, raw, types, now, result))
                ]
                if not envelopes:
                    continue
                known = {
                    row["event_id"]
                    for row in connection.execute(
                        "SELECT event_id FROM webhook_events WHERE provider = %s"
                        " AND event_id = ANY(%s)",
                        (provider, [e.event_id for e in envelopes]),
                    )
                }
                missing.update((e.event_id, e) for e in envelopes if e.event_id not in known)
        except OutOfTime as error:
            raise _Cut(pages, error) from error
        return missing

    def _normalize(
        self,
        normalizer: Provider,
        provider: str,
        raw: Any,
        types: list[str],
        now: datetime,
        result: RecoveryResult,
    ) -> Envelope | None:
        body = json.dumps(raw, separators=(",", ":")).encode()
        try:
            envelope = normalizer.normalize(WebhookRequest(body=body), received_at=now)
        except (MalformedEvent, ValueError) as error:
            # One odd item must not hold back the checkpoint for every other event.
            _skip(result, provider, _listed_id(raw), "malformed", str(error))
            return None
        if envelope.event_type not in types:
            _skip(result, provider, envelope.event_id, "unhandled_type", envelope.event_type)
            return None
        return envelope

    def _enqueue(
        self,
        provider: str,
        missing: Mapping[str, Envelope],
        deadline: Deadline,
        result: RecoveryResult,
    ) -> None:
        enqueued = 0
        try:
            for envelope in missing.values():
                try:
                    deadline.require(PAGE_SECONDS, f"enqueue missed {provider} events")
                except OutOfTime as error:
                    raise _Cut(0, error) from error
                try:
                    self.queue.send(_marked(envelope))
                except PayloadTooLarge as error:
                    _skip(result, provider, envelope.event_id, "too_large", str(error))
                    continue
                enqueued += 1
                logger.info(
                    "missed event enqueued",
                    extra={
                        "provider": provider,
                        "event_id": envelope.event_id,
                        "event_type": envelope.event_type,
                    },
                )
        finally:
            result.enqueued[provider] = result.enqueued.get(provider, 0) + enqueued
            if enqueued:
                count(Metric.RECOVERY_ENQUEUED, enqueued, provider=provider)


def _skip(
    result: RecoveryResult, provider: str, event_id: str | None, reason: str, detail: str
) -> None:
    result.skipped += 1
    logger.warning(
        "listed event skipped",
        extra={"provider": provider, "event_id": event_id, "reason": reason, "error": detail},
    )
    count(Metric.RECOVERY_SKIPPED, provider=provider, reason=reason)


def _listed_id(raw: Any) -> str | None:
    """The item's event id if it has one, for the log (Stripe: id, Square: event_id)."""
    if not isinstance(raw, dict):
        return None
    for key in ("id", "event_id"):
        value = raw.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)[:200]
    return None


def _whole_seconds(moment: datetime) -> datetime:
    # Stripe filters on whole seconds: windows on whole seconds leave no gap.
    return moment.replace(microsecond=0)


def _parse_checkpoint(provider: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        logger.warning(
            "unreadable recovery checkpoint: listing from the lookback",
            extra={"provider": provider, "checkpoint": value},
        )
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _marked(envelope: Envelope) -> Envelope:
    return envelope.model_copy(update={"headers": {**envelope.headers, RECOVERED_HEADER: "true"}})


def latest_checkpoints(connection: Connection) -> dict[str, str]:
    """The checkpoints of the newest run, whatever its status.

    A run killed by the Lambda timeout stays 'running', but the checkpoints it
    saved as it went are progress all the same.
    """
    row = connection.execute(
        "SELECT checkpoints FROM reconciliation_runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    checkpoints: dict[str, Any] = row["checkpoints"] if row else {}
    return {str(k): str(v) for k, v in checkpoints.items()}
