"""Exceptions that cross module boundaries, and the one table of what each means.

Every class says, as class attributes:
- `http_status`, `answer_code`, `answer_message`: its HTTP answer, the body
  `{"error": answer_code, "message": answer_message or str(error)}`; a fixed
  message where the error's own text could help an attacker or leak internals;
- `transient`: a dependency's fault, answered 503 with Retry-After, retried
  later, never counted against the event, never parked (transient ⇔ 503);
- `metric`: what the receiver counts per provider when it answers this error,
  and the consumer counts in total when an attempt ends with it; None where
  nothing does, or where the code raising it counts it itself;
- `rejection`: the `reason` dimension of WebhooksRejected, which counts every
  webhook the receiver refuses as not acceptable (4xx);
- `log_message`: the receiver's log line (operators filter on it: runbook);
- `exit_code`: the CLI's.
The receiver, the consumer, the reconciler and the CLI all read these
attributes; none decides on its own. Messages are safe to show to the caller:
they never carry secrets, expected signatures or payloads.

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
    answer_message: ClassVar[str | None] = None
    transient: ClassVar[bool] = False
    metric: ClassVar[Metric | None] = None
    rejection: ClassVar[str | None] = None
    log_message: ClassVar[str] = "request failed"
    exit_code: ClassVar[int] = EXIT_FAILED

    def answer(self) -> dict[str, str]:
        """The body of the HTTP answer to this error."""
        return {"error": self.answer_code, "message": self.answer_message or str(self)}

    def log_fields(self) -> dict[str, str]:
        """What the log line about this error carries besides the provider."""
        return {"detail": str(self)}


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
    # One answer for unknown and disabled: a caller learns nothing about which are set up.
    answer_message = "unknown or disabled provider"
    rejection = "unknown_provider"
    log_message = "unknown or disabled provider"
    exit_code = EXIT_NOT_FOUND

    def log_fields(self) -> dict[str, str]:
        return {}  # the path is the caller's choice: only a known provider is logged


class ProviderDisabled(UnknownProvider):
    """The provider is known but has no secret configured."""


class PayloadTooLarge(HooklineError):
    """The body (or the envelope built from it) exceeds the configured limit."""

    http_status = 413
    answer_code = "payload_too_large"
    rejection = "too_large"
    log_message = "payload too large"


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
    # Never why: the reason is logged and counted, not a hint to a forger.
    answer_message = "signature verification failed"
    metric = Metric.SIGNATURE_REJECTED
    rejection = "signature"
    log_message = "signature rejected"

    def __init__(self, reason: RejectReason) -> None:
        super().__init__(f"signature rejected: {reason.value}")
        self.reason = reason

    def log_fields(self) -> dict[str, str]:
        return {"reason": self.reason.value}


class MalformedEvent(HooklineError):
    """Genuine request, but the body cannot become an event (not JSON, no event id...)."""

    http_status = 400
    answer_code = "malformed_event"
    rejection = "malformed"
    log_message = "malformed event"


class ServiceUnavailable(HooklineError):
    """A dependency failed; the provider must retry later."""

    http_status = 503
    answer_code = "unavailable"
    # The cause (which dependency, its error) is logged, never answered.
    answer_message = "temporarily unavailable, retry later"
    transient = True
    # What a 503 of no more specific kind counts (as the receiver always has).
    metric: ClassVar[Metric | None] = Metric.CONFIGURATION_ERRORS
    log_message = "cannot accept webhook now"
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
    """A provider's API timed out, rate-limited or failed; retry later.

    Counted only as a transient EventsFailed: it is the provider's outage, not
    this stack's configuration."""

    metric = None


class CallbackFailed(ServiceUnavailable):
    """A shop's order callback raised (`registry.on_order_change`): the event rolls back.

    Transient on purpose: the event is fine; the shop's code or table is wrong,
    and a deploy or a migration fixes it. So the event is retried with backoff
    until it applies, never counts as one of its own failures, never parked.

    OrderCallbackFailed is counted by hookline.outbox where the callback fails
    (it names the callback, and settling orphans in the reconciler runs callbacks
    too), so the consumer does not count it again.
    """

    metric = None


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
