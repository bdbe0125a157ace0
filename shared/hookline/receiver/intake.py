"""Accepting one webhook: the order of checks is the security design.

Provider known → body within limit → secrets → signature on the raw bytes →
parse → enqueue. Nothing is parsed before the signature holds, and nothing is
answered 200 before SQS has the envelope.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from hookline.envelope import Envelope
from hookline.errors import (
    MalformedEvent,
    PayloadTooLarge,
    RejectReason,
    SignatureRejected,
    UnknownProvider,
)
from hookline.observability import logger
from hookline.providers import Provider, WebhookRequest
from hookline.queue import EventQueue
from hookline.secrets import WebhookSecrets


@dataclass(frozen=True)
class Accepted:
    envelope: Envelope
    message_id: str


@dataclass
class Intake:
    providers: Mapping[str, Provider]
    secrets: WebhookSecrets
    queue: EventQueue
    tolerance_seconds: int = 300
    max_body_bytes: int = 1_048_576
    clock: Callable[[], float] = time.time

    def accept(self, provider_name: str, request: WebhookRequest) -> Accepted:
        provider = self.providers.get(provider_name)
        if provider is None:
            raise UnknownProvider(provider_name)
        if len(request.body) > self.max_body_bytes:
            raise PayloadTooLarge(f"body exceeds {self.max_body_bytes} bytes")
        secrets = self.secrets.for_provider(provider.name)
        now = self.clock()
        try:
            provider.verify(request, secrets, now=now, tolerance=self.tolerance_seconds)
        except (ValueError, OverflowError) as error:
            # A signed part verify cannot read (a timestamp past int()'s digit limit,
            # text that is not UTF-8) proves nothing: refused as malformed, never a 500.
            logger.warning(
                "signature check failed to read the request", extra={"error": type(error).__name__}
            )
            raise SignatureRejected(RejectReason.MALFORMED_HEADER) from None
        try:
            envelope = provider.normalize(request, received_at=datetime.fromtimestamp(now, UTC))
        except ValidationError as error:
            fields = sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]})
            raise MalformedEvent(f"invalid event fields: {', '.join(fields)}") from None
        except (ValueError, OverflowError, OSError, RecursionError) as error:
            # normalize only reads the verified request, so a value it cannot convert
            # (a date past year 9999: ValueError, OverflowError, or OSError from the
            # platform's time functions) is this event's fault: 400 like any
            # unreadable event, never a 500. The type is named to find the field; logged
            # as an error too, since a bug in a provider's normalize would look the same.
            logger.error(
                "normalize could not read a verified event",
                extra={"provider": provider.name, "error": type(error).__name__},
            )
            raise MalformedEvent(f"event fields cannot be read: {type(error).__name__}") from None
        return Accepted(envelope=envelope, message_id=self.queue.send(envelope))
