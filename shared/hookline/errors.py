"""Exceptions that cross module boundaries.

Each one maps to exactly one HTTP answer in `hookline.receiver.api`; nothing
else decides status codes. Messages are safe to show to the caller: they never
carry secrets, expected signatures or payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class HooklineError(Exception):
    """Base of every error hookline raises on purpose."""


class UnknownProvider(HooklineError):
    """The path names no provider hookline knows."""


class ProviderDisabled(HooklineError):
    """The provider is known but has no secret configured."""


class PayloadTooLarge(HooklineError):
    """The body (or the envelope built from it) exceeds the configured limit."""


class RejectReason(StrEnum):
    """Why a signature check failed; logged and counted, never a hint to the caller."""

    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    MISMATCH = "mismatch"
    TIMESTAMP_OUT_OF_TOLERANCE = "timestamp_out_of_tolerance"
    UNSIGNED_FIELD = "unsigned_field"


class SignatureRejected(HooklineError):
    """The request is not provably from the provider."""

    def __init__(self, reason: RejectReason) -> None:
        super().__init__(f"signature rejected: {reason.value}")
        self.reason = reason


class MalformedEvent(HooklineError):
    """Genuine request, but the body cannot become an event (not JSON, no event id...)."""


class ServiceUnavailable(HooklineError):
    """A dependency failed; the provider must retry later."""


class SecretsUnavailable(ServiceUnavailable):
    """The webhook secret could not be read or is not shaped as documented."""


class QueueUnavailable(ServiceUnavailable):
    """SQS did not accept the envelope."""


class ConfigurationError(ServiceUnavailable):
    """The function's environment is missing or invalid."""


class InvalidSecret(ConfigurationError):
    """Providers' webhook secret entries are present but unusable: never an empty HMAC key.

    `problems` maps each provider to what is wrong with its entry, in words that
    name no secret value.
    """

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(sorted(problems.items()))
        super().__init__(
            "; ".join(f"{provider}: {problem}" for provider, problem in self.problems.items())
        )

    @property
    def providers(self) -> list[str]:
        return list(self.problems)


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL cannot be reached or dropped the connection; retry later."""


class ProviderApiUnavailable(ServiceUnavailable):
    """A provider's API timed out, rate-limited or failed; retry later."""


class CallbackFailed(ServiceUnavailable):
    """A shop's order callback raised (`registry.on_order_change`): the event rolls back.

    Transient on purpose: the event is fine; the shop's code or table is wrong,
    and a deploy or a migration fixes it. So the event is retried with backoff
    until it applies, never counts as one of its own failures, never parked.
    """


class SessionChanged(HooklineError):
    """A handler left hookline's session other than it found it: it ended the
    transaction (a raw COMMIT or ROLLBACK) or moved the search_path.

    A handler's bug, so the event's own failure: the transaction rolls back (which
    undoes a SET made in it), the session is closed, and the event is parked once
    it has failed often enough.
    """


class OutOfTime(HooklineError):
    """Not enough of the invocation is left to start (or finish) this work.

    Not the event's fault and not a dependency's: the work is handed back
    untouched, to a fresh invocation, and never counts as a failure.
    """


class ResourceNotFound(HooklineError):
    """A provider's API says the resource an event names does not exist."""


class MigrationError(HooklineError):
    """The migrations on disk and those recorded in the database disagree."""
