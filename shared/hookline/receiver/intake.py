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
from hookline.errors import MalformedEvent, PayloadTooLarge, UnknownProvider
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
        provider.verify(request, secrets, now=now, tolerance=self.tolerance_seconds)
        try:
            envelope = provider.normalize(request, received_at=datetime.fromtimestamp(now, UTC))
        except ValidationError as error:
            fields = sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]})
            raise MalformedEvent(f"invalid event fields: {', '.join(fields)}") from None
        return Accepted(envelope=envelope, message_id=self.queue.send(envelope))
