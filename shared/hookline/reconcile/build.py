"""Wiring ReconcilerFunction's dependencies once per container."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cache

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from hookline import status
from hookline.aws import CLIENT_CONFIG
from hookline.clients.events import EventListing, SquareEvents, StripeEvents
from hookline.database_setup import build_database, database_conninfo, import_handler_modules
from hookline.errors import ConfigurationError
from hookline.handlers import registry
from hookline.providers import SQUARE_ACCESS_TOKEN, STRIPE_API_KEY
from hookline.queue import EventQueue
from hookline.reconcile.backlog import QueueLag
from hookline.reconcile.breaker import CircuitBreaker
from hookline.reconcile.reconciler import Reconciler
from hookline.reconcile.recover import Recoverer
from hookline.reconcile.redrive import Redriver
from hookline.secrets import WebhookSecrets
from hookline.settings import ReconcilerSettings

# API credentials in the webhook secret, beside the signing secrets (docs/providers.md).


def _configured(secrets: WebhookSecrets, key: str) -> bool:
    try:
        secrets.api_credential(key)
    except ConfigurationError:
        return False
    return True


def event_listings(settings: ReconcilerSettings, secrets: WebhookSecrets) -> list[EventListing]:
    """The providers whose events can be listed: those with an API credential."""
    listings: list[EventListing] = []
    if _configured(secrets, STRIPE_API_KEY):
        stripe_key = lambda: secrets.api_credential(STRIPE_API_KEY)  # noqa: E731 - read on use
        listings.append(StripeEvents(stripe_key, settings.stripe_api_url))
    if _configured(secrets, SQUARE_ACCESS_TOKEN):
        square_token = lambda: secrets.api_credential(SQUARE_ACCESS_TOKEN)  # noqa: E731 - read on use
        listings.append(SquareEvents(square_token, settings.square_api_url))
    return listings


def queue_lag(settings: ReconcilerSettings) -> Callable[[], timedelta]:
    """How long the oldest received event may still be waiting: in EventsQueue, or in
    EventsDLQ (which the redrive step works through 100 letters a run)."""
    cloudwatch = boto3.client("cloudwatch", config=CLIENT_CONFIG)
    lags = [
        QueueLag.of_queue_url(cloudwatch, url) for url in (settings.queue_url, settings.dlq_url)
    ]
    return lambda: max(lag() for lag in lags)


def build_breaker(settings: ReconcilerSettings) -> CircuitBreaker | None:
    if not (
        settings.consumer_function_name and settings.events_queue_arn and settings.idempotency_table
    ):
        return None
    return CircuitBreaker(
        lambda_client=boto3.client("lambda", config=CLIENT_CONFIG),
        cloudwatch=boto3.client("cloudwatch", config=CLIENT_CONFIG),
        dynamodb=boto3.client("dynamodb", config=CLIENT_CONFIG),
        table=settings.idempotency_table,
        consumer_function=settings.consumer_function_name,
        queue_arn=settings.events_queue_arn,
        namespace=settings.powertools_metrics_namespace,
        threshold=settings.breaker_threshold,
    )


def build_reconciler(settings: ReconcilerSettings) -> Reconciler:
    import_handler_modules(settings.hookline_handler_modules)
    secrets = SecretsProvider(boto3_client=boto3.client("secretsmanager", config=CLIENT_CONFIG))
    webhook_secrets = WebhookSecrets(settings.secrets_name, secrets)
    sqs = boto3.client("sqs", config=CLIENT_CONFIG)
    queue = EventQueue(settings.queue_url, sqs)
    conninfo = database_conninfo(settings, secrets)
    return Reconciler(
        build_database(
            settings,
            secrets,
            "hookline-reconciler",
            handler_modules=settings.hookline_handler_modules,
        ),
        lambda judge, park: Redriver(sqs, settings.queue_url, settings.dlq_url, judge, park),
        lambda: status.Target(
            "deployed",
            {"EventsQueue": settings.queue_url, "EventsDLQ": settings.dlq_url},
            sqs,
            conninfo(),
            settings.database_schema,
        ),
        Recoverer(
            lambda: event_listings(settings, webhook_secrets),
            queue,
            registry.event_types,
            lookback=timedelta(hours=settings.recovery_lookback_hours),
            queue_lag=queue_lag(settings),
        ),
        queue,
        build_breaker(settings),
        orphan_deadline=timedelta(hours=settings.orphan_deadline_hours),
        retention_days=settings.retention_days,
        max_redrives=settings.max_redrives,
        max_permanent_failures=settings.max_permanent_failures,
    )


@cache
def reconciler() -> Reconciler:
    """Built on first use and kept for the container's life."""
    return build_reconciler(ReconcilerSettings.from_env())
