"""Wiring the consumer from its settings, once per Lambda container."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import timedelta
from functools import cache

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

from hookline.aws import CLIENT_CONFIG
from hookline.clients.mercadopago import MercadoPagoApi
from hookline.consumer.apply import Applier
from hookline.consumer.batch import Consumer, RetryPolicy
from hookline.database import Database, conninfo_from_secret
from hookline.queue import EventQueue
from hookline.secrets import WebhookSecrets
from hookline.settings import ConsumerSettings, DatabaseSettings

MERCADOPAGO_TOKEN_KEY = "mercadopago_access_token"  # noqa: S105 - a key name, not a secret


def database_conninfo(settings: DatabaseSettings, secrets: SecretsProvider) -> Callable[[], str]:
    """DATABASE_URL, or the RDS-style secret read on each (re)connect, cached 5 minutes."""
    if settings.database_url is not None:
        url = settings.database_url
        return lambda: url
    name = settings.database_secret_name
    assert name is not None  # DatabaseSettings requires one of the two
    defaults = {
        "host": settings.database_host,
        "port": None if settings.database_port is None else str(settings.database_port),
        "dbname": settings.database_name,
    }
    return lambda: conninfo_from_secret(secrets.get(name, transform="json", max_age=300), defaults)


def build_database(
    settings: DatabaseSettings,
    secrets: SecretsProvider,
    application_name: str,
    *,
    handler_modules: str = "",
) -> Database:
    return Database(
        database_conninfo(settings, secrets),
        application_name=application_name,
        schema=settings.database_schema,
        # A team's handlers or callbacks run on the connection: check what they leave.
        verify_sessions=bool(handler_modules.strip()),
        connect_timeout_seconds=settings.database_connect_timeout_seconds,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )


def import_handler_modules(names: str) -> None:
    """Import the team's own handler modules so their handlers register."""
    for name in filter(None, (part.strip() for part in names.split(","))):
        importlib.import_module(name)


def build_consumer(settings: ConsumerSettings) -> Consumer:
    import_handler_modules(settings.hookline_handler_modules)
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
        MercadoPagoApi(
            lambda: webhook_secrets.api_credential(MERCADOPAGO_TOKEN_KEY),
            settings.mercadopago_api_url,
        ),
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
