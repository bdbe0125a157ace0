"""Every metric hookline emits, by name: the one list the code, the alarms and the
dashboard share (tests/unit/test_metric_names.py holds template.yaml to it).

Counts are emitted once in total (what alarms watch, service dimension only) and,
where a breakdown helps, again per provider, reason, kind, step or status (with
the service too: the dashboard searches on it). The namespace is the stack's
MetricsNamespace parameter and the service its name (hookline.observability).
"""

from __future__ import annotations

from enum import StrEnum


class Metric(StrEnum):
    # Receiver
    WEBHOOKS_ACCEPTED = "WebhooksAccepted"  # per provider
    WEBHOOKS_REJECTED = "WebhooksRejected"  # per reason
    SIGNATURE_REJECTED = "SignatureRejected"  # per provider
    ENQUEUE_FAILED = "EnqueueFailed"  # per provider: SQS refused, answered 503
    SECRETS_UNAVAILABLE = "SecretsUnavailable"  # per provider, answered 503
    CONFIGURATION_ERRORS = "ConfigurationErrors"  # per provider, answered 503
    HEALTH_CHECKS = "HealthChecks"  # per status
    ROUTES_NOT_FOUND = "RoutesNotFound"
    # Consumer: one outcome per event
    EVENTS_APPLIED = "EventsApplied"
    EVENTS_STALE = "EventsStale"
    EVENTS_IGNORED = "EventsIgnored"
    EVENTS_ORPHANED = "EventsOrphaned"
    EVENTS_PARKED = "EventsParked"  # consumer, orphan settling and redrive
    EVENTS_DUPLICATE = "EventsDuplicate"
    EVENTS_FAILED = "EventsFailed"  # per kind: transient or permanent
    EVENTS_HANDED_BACK = "EventsHandedBack"  # out of time, untouched
    EVENTS_RECOVERED = "EventsRecovered"  # applied events the reconciler recovered
    END_TO_END_LATENCY = "EndToEndLatency"  # milliseconds, received → committed
    WAITING_EVENT_AGE = "WaitingEventAge"  # seconds an event has waited to apply
    DATABASE_FAILURES = "DatabaseFailures"  # read by the circuit breaker
    IDEMPOTENCY_UNAVAILABLE = "IdempotencyUnavailable"
    AMOUNT_MISMATCHES = "AmountMismatches"
    SESSION_DISCARDED = "SessionDiscarded"
    ORDER_CALLBACK_FAILED = "OrderCallbackFailed"
    ORDER_NOTIFY_SKIPPED = "OrderNotifySkipped"
    # Reconciler
    EVENTS_REDRIVEN = "EventsRedriven"
    DEAD_LETTERS_FAILED = "DeadLettersFailed"
    DEAD_LETTERS_DROPPED = "DeadLettersDropped"
    ORPHANS_SETTLED = "OrphansSettled"
    ORPHANS_FAILED = "OrphansFailed"
    RECOVERY_ENQUEUED = "RecoveryEnqueued"
    RECOVERY_SKIPPED = "RecoverySkipped"
    RECOVERY_PAUSED = "RecoveryPaused"
    RECOVERY_FAILED = "RecoveryFailed"
    RETENTION_DELETED = "RetentionDeleted"
    RETENTION_FAILED = "RetentionFailed"
    RECONCILE_SKIPPED = "ReconcileSkipped"
    RECONCILE_FAILED = "ReconcileFailed"
    RECONCILE_STEP_FAILED = "ReconcileStepFailed"  # per step
    BREAKER_OPEN = "BreakerOpen"  # gauge, 0 or 1
    BREAKER_OPENED = "BreakerOpened"
    BREAKER_CLOSED = "BreakerClosed"
    BREAKER_ERRORS = "BreakerErrors"
    # Operator actions
    EVENTS_REPLAYED = "EventsReplayed"
    PARKED_RESOLVED = "ParkedResolved"
    # Migrations on deploy
    MIGRATIONS_FAILED = "MigrationsFailed"
    # Powertools' own, on a cold start of the receiver and the consumer
    COLD_START = "ColdStart"
