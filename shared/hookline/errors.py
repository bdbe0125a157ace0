"""Exceptions that cross module boundaries, and the one table of what each means.

Every class says, as class attributes, its HTTP answer (`http_status`,
`answer_code`), whether it is transient (a dependency's fault: retried later,
never counted against the event, never parked), the metric it counts, and the
CLI's exit code. The receiver, the consumer, the reconciler and the CLI all
read these attributes; none decides on its own. Messages are safe to show to
the caller: they never carry secrets, expected signatures or payloads.

CLI exit codes (docs/cli.md): 0 done; 1 done but something failed (a send with
refused deliveries); 2 a usage error (click's own: an option or argument that
is wrong); 3 configuration to fix on this machine; 4 not found; 5 a dependency
unavailable (the database, AWS, the stack's endpoint); 6 refused by the
operator rules (nothing changed); 7 migrations disagree; 130 interrupted.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar

from hookline.metric_names import Metric

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIGURATION = 3
EXIT_NOT_FOUND = 4
EXIT_UNAVAILABLE = 5
EXIT_REFUSED = 6
EXIT_MIGRATION = 7
EXIT_INTERRUPTED = 130


class HooklineError(Exception):
    """Base of every error hookline raises on purpose.

    An unmapped subclass answers 500 in the receiver (a bug, surfaced as a
    Lambda error), is the event's own failure in the consumer, and exits 1.
    """

    http_status: ClassVar[int] = 500
    answer_code: ClassVar[str] = "internal_error"
    transient: ClassVar[bool] = False
    metric: ClassVar[Metric | None] = None
    exit_code: ClassVar[int] = EXIT_FAILED


def error_class(name: str) -> type[HooklineError]:
    """The HooklineError subclass called `name` (a remote answer's `kind`), else the base."""
    pending: list[type[HooklineError]] = [HooklineError]
    while pending:
        found = pending.pop()
        if found.__name__ == name:
            return found
        pending.extend(found.__subclasses__())
    return HooklineError


class UnknownProvider(HooklineError):
    """The path names no provider hookline knows."""

    http_status = 404
    answer_code = "unknown_provider"
    metric = Metric.WEBHOOKS_REJECTED
    exit_code = EXIT_NOT_FOUND


class ProviderDisabled(HooklineError):
    """The provider is known but has no secret configured."""

    http_status = 404
    answer_code = "unknown_provider"
    metric = Metric.WEBHOOKS_REJECTED
    exit_code = EXIT_NOT_FOUND


class PayloadTooLarge(HooklineError):
    """The body (or the envelope built from it) exceeds the configured limit."""

    http_status = 413
    answer_code = "payload_too_large"
    metric = Metric.WEBHOOKS_REJECTED


class RejectReason(StrEnum):
    """Why a signature check failed; logged and counted, never a hint to the caller."""

    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    MISMATCH = "mismatch"
    TIMESTAMP_OUT_OF_TOLERANCE = "timestamp_out_of_tolerance"
    UNSIGNED_FIELD = "unsigned_field"


class SignatureRejected(HooklineError):
    """The request is not provably from the provider."""

    http_status = 401
    answer_code = "invalid_signature"
    metric = Metric.SIGNATURE_REJECTED

    def __init__(self, reason: RejectReason) -> None:
        super().__init__(f"signature rejected: {reason.value}")
        self.reason = reason


class MalformedEvent(HooklineError):
    """Genuine request, but the body cannot become an event (not JSON, no event id...)."""

    http_status = 400
    answer_code = "malformed_event"
    metric = Metric.WEBHOOKS_REJECTED


class ServiceUnavailable(HooklineError):
    """A dependency failed; the provider must retry later."""

    http_status = 503
    answer_code = "unavailable"
    transient = True
    metric = Metric.CONFIGURATION_ERRORS
    exit_code = EXIT_UNAVAILABLE


class SecretsUnavailable(ServiceUnavailable):
    """The webhook secret could not be read or is not shaped as documented."""

    metric = Metric.SECRETS_UNAVAILABLE


class QueueUnavailable(ServiceUnavailable):
    """SQS did not accept the envelope."""

    metric = Metric.ENQUEUE_FAILED


class ConfigurationError(ServiceUnavailable):
    """The function's environment is missing or invalid."""

    metric = Metric.CONFIGURATION_ERRORS
    exit_code = EXIT_CONFIGURATION


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

    metric = Metric.DATABASE_FAILURES


class ProviderApiUnavailable(ServiceUnavailable):
    """A provider's API timed out, rate-limited or failed; retry later."""


class CallbackFailed(ServiceUnavailable):
    """A shop's order callback raised (`registry.on_order_change`): the event rolls back.

    Transient on purpose: the event is fine; the shop's code or table is wrong,
    and a deploy or a migration fixes it. So the event is retried with backoff
    until it applies, never counts as one of its own failures, never parked.
    """

    metric = Metric.ORDER_CALLBACK_FAILED


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

    exit_code = EXIT_NOT_FOUND


class MigrationError(HooklineError):
    """The migrations on disk and those recorded in the database disagree."""

    exit_code = EXIT_MIGRATION
    metric = Metric.MIGRATIONS_FAILED


class InvalidRequest(HooklineError):
    """An operator request that is not well formed (a bad time, an unknown status):
    refused before any database work."""

    http_status = 400
    answer_code = "invalid_request"
    exit_code = EXIT_USAGE


class NotFound(HooklineError):
    """An operator request names something that is not there (an event, a parking)."""

    http_status = 404
    answer_code = "not_found"
    exit_code = EXIT_NOT_FOUND


class OperatorRefused(HooklineError):
    """An operator request that the rules refuse as asked (ambiguous, too broad,
    already done): nothing changed, and the message says what to ask instead."""

    http_status = 409
    answer_code = "refused"
    exit_code = EXIT_REFUSED
