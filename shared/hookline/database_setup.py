"""What the consumer, the reconciler and the migrations share, built once per container:
the database (from DATABASE_URL or an RDS-style secret) and the team's handler modules.

A module of its own so that the reconciler does not import the consumer's batch
and idempotency machinery (and their cold-start cost) to get a database.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from hookline.database import Database, conninfo_from_secret
from hookline.settings import DatabaseSettings


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
