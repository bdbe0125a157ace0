"""Wiring the consumer from its settings, once per Lambda container."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

from hookline.aws import CLIENT_CONFIG
from hookline.clients.provider_apis import ProviderApis
from hookline.consumer.apply import Applier
from hookline.consumer.batch import Consumer, RetryPolicy
from hookline.database_setup import build_database, import_handler_modules
from hookline.handlers import adyen as adyen_handlers
from hookline.queue import EventQueue
from hookline.secrets import WebhookSecrets
from hookline.settings import ConsumerSettings


def build_consumer(settings: ConsumerSettings) -> Consumer:
    import_handler_modules(settings.hookline_handler_modules)
    adyen_handlers.configure(settings.adyen_capture)
    # One Secrets Manager client (and cache) for the webhook and database secrets.
    secrets = SecretsProvider(boto3_client=boto3.client("secretsmanager", config=CLIENT_CONFIG))
    webhook_secrets = WebhookSecrets(settings.secrets_name, secrets)
    applier = Applier(
        build_database(
            settings,
            secrets,
            "hookline-consumer",
            handler_modules=settings.hookline_handler_modules,
        ),
        ProviderApis(webhook_secrets.api_credential, settings.api_urls()),
        orphan_deadline=timedelta(hours=settings.orphan_deadline_hours),
        max_permanent_failures=settings.max_permanent_failures,
    )
    return Consumer(
        applier,
        DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table,
            # Fail fast: without the store the ledger still dedups (batch.py).
            boto_config=Config(
                connect_timeout=1, read_timeout=1, retries={"mode": "standard", "max_attempts": 2}
            ),
        ),
        EventQueue(settings.queue_url, boto3.client("sqs", config=CLIENT_CONFIG)),
        RetryPolicy(
            settings.retry_base_seconds,
            settings.retry_max_seconds,
            settings.retry_permanent_seconds,
        ),
    )


@cache
def consumer() -> Consumer:
    """Built on first use and kept for the container's life (connection, clients, caches)."""
    return build_consumer(ConsumerSettings.from_env())
