"""The queue envelope: what the receiver sends and the consumer reads.

Its fields are a public contract (DESIGN.md, "Queue envelope").
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hookline.storable import is_storable_text

# hookline's own envelope headers (never a provider's): an event the reconciler
# found in a provider's event list, and the event an operator's replay repeats.
RECOVERED_HEADER = "hookline-recovered"
REPLAY_OF_HEADER = "hookline-replay-of"
MAX_EVENT_ID_CHARS = 512


def _digest(*parts: str) -> str:
    # NUL cannot occur in either part, so ("ab", "c") and ("a", "bc") never collide.
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class Envelope(BaseModel):
    """One genuine provider event, normalized."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field(min_length=1)
    event_id: str = Field(min_length=1, max_length=MAX_EVENT_ID_CHARS)
    event_type: str = Field(min_length=1, max_length=256)
    object_id: str | None = Field(default=None, max_length=512)
    occurred_at: datetime | None = None
    received_at: datetime
    headers: dict[str, str] = Field(default_factory=dict)
    body: str

    @field_validator("provider", "event_id", "event_type", "object_id")
    @classmethod
    def _storable_text(cls, value: str | None) -> str | None:
        # The ledger keys on these: PostgreSQL text cannot hold NUL or a lone
        # surrogate, so an event naming itself with one could never be recorded,
        # applied or parked.
        if value is not None and not is_storable_text(value):
            raise ValueError("contains a character PostgreSQL cannot store")
        return value

    @field_validator("headers")
    @classmethod
    def _storable_headers(cls, value: dict[str, str]) -> dict[str, str]:
        if not all(is_storable_text(key) and is_storable_text(item) for key, item in value.items()):
            raise ValueError("contains a character PostgreSQL cannot store")
        return value

    @property
    def deduplication_id(self) -> str:
        """Same provider and event id, same id: SQS drops a provider's retry.

        A hash keeps it within SQS's 128 characters and allowed alphabet
        whatever the provider's id looks like.
        """
        return _digest(self.provider, self.event_id)

    @property
    def group_id(self) -> str:
        """Events about one object share a group, so SQS FIFO keeps them in order.

        An event with no object id is its own group: nothing to order it against.
        """
        key = self.object_id if self.object_id is not None else f"event:{self.event_id}"
        return f"{self.provider}:{_digest(self.provider, key)}"

    def to_message_body(self) -> str:
        """The SQS message body: model_dump_json(), without its keyword handling, with
        U+FFFE and U+FFFF escaped.

        SQS refuses a message holding either (its allowed characters stop at U+FFFD),
        and JSON leaves them raw: a body a customer typed one into could never be
        queued. In the serialized JSON they occur only inside strings, so the escape
        reads back as the same text.
        """
        text = self.__pydantic_serializer__.to_json(self).decode()
        if "\ufffe" in text or "\uffff" in text:
            text = text.replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")
        return text
