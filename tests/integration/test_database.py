"""The consumer's PostgreSQL connection: where credentials come from, and surviving drops."""

from __future__ import annotations

import json

import boto3
import psycopg
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from hookline.cli import main
from hookline.database import Database, conninfo_from_secret
from hookline.database_setup import database_conninfo
from hookline.errors import ConfigurationError, DatabaseUnavailable
from hookline.settings import ConsumerSettings, DatabaseSettings
from psycopg.conninfo import conninfo_to_dict

BASE_ENVIRONMENT = {"QUEUE_URL": "q", "SECRETS_NAME": "s", "IDEMPOTENCY_TABLE": "t"}


def test_credentials_from_an_rds_style_secret(aws: None, database_url: str) -> None:
    parts = conninfo_to_dict(database_url)
    boto3.client("secretsmanager").create_secret(
        Name="hookline/database",
        SecretString=json.dumps(
            {
                "engine": "postgres",
                "host": parts.get("host", "127.0.0.1"),
                "port": int(parts.get("port") or 5432),
                "dbname": parts["dbname"],
                "username": parts.get("user") or "root",
                "password": "not-a-real-password",
                "sslmode": "disable",
            }
        ),
    )
    settings = DatabaseSettings.from_env({"DATABASE_SECRET_NAME": "hookline/database"})
    database = Database(database_conninfo(settings, SecretsProvider()))
    row = database.connection().execute("SELECT current_database() AS name").fetchone()
    assert row == {"name": parts["dbname"]}
    database.discard()


def test_an_rds_managed_secret_works_as_is_with_the_host_from_the_stack(
    aws: None, database_url: str
) -> None:
    """RDS's own master-user secret (`rds!db-...`) holds username and password only;
    DatabaseHost/DatabasePort/DatabaseName (DATABASE_HOST/_PORT/_NAME) say where."""
    parts = conninfo_to_dict(database_url)
    boto3.client("secretsmanager").create_secret(
        Name="rds!db-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
        SecretString=json.dumps(
            {"username": parts.get("user") or "root", "password": "not-a-real-password"}
        ),
    )
    settings = DatabaseSettings.from_env(
        {
            "DATABASE_SECRET_NAME": "rds!db-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
            "DATABASE_HOST": str(parts.get("host", "127.0.0.1")),
            "DATABASE_PORT": str(parts.get("port") or 5432),
            "DATABASE_NAME": str(parts["dbname"]),
        }
    )
    conninfo = database_conninfo(settings, SecretsProvider())
    # The server here is local and plain; RDS's default (require) is kept otherwise.
    database = Database(lambda: conninfo().replace("sslmode=require", "sslmode=disable"))
    row = database.connection().execute("SELECT current_database() AS name").fetchone()
    assert row == {"name": parts["dbname"]}
    assert "sslmode=require" in conninfo()
    database.discard()


def test_the_secret_wins_over_the_stacks_defaults() -> None:
    conninfo = conninfo_to_dict(
        conninfo_from_secret(
            {"host": "db.internal", "username": "u", "password": "p", "dbname": "shop"},
            {"host": "old.internal", "port": "6432", "dbname": "postgres"},
        )
    )
    assert (conninfo["host"], conninfo["port"], conninfo["dbname"]) == (
        "db.internal",
        "6432",
        "shop",
    )
    named_database = conninfo_to_dict(
        conninfo_from_secret(
            {"host": "h", "username": "u", "password": "p", "database": "shop"},
            {"dbname": "postgres"},
        )
    )
    assert named_database["dbname"] == "shop"


def test_an_rds_managed_secret_without_a_host_says_which_parameter_to_set() -> None:
    with pytest.raises(ConfigurationError, match="DatabaseHost"):
        conninfo_from_secret({"username": "u", "password": "p"}, {"host": None})


def test_a_secret_without_host_or_user_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="host, username"):
        conninfo_from_secret({"password": "x"})


def test_settings_need_a_database_and_name_variables_only() -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL or DATABASE_SECRET_NAME"):
        ConsumerSettings.from_env({**BASE_ENVIRONMENT, "DATABASE_URL": ""})
    secret_url = "postgresql://u:very-secret@h/db"
    with pytest.raises(ConfigurationError) as raised:
        ConsumerSettings.from_env(
            {**BASE_ENVIRONMENT, "DATABASE_URL": secret_url, "ORPHAN_DEADLINE_HOURS": "soon"}
        )
    assert "ORPHAN_DEADLINE_HOURS" in str(raised.value)
    assert "very-secret" not in str(raised.value)


def test_a_dropped_connection_is_replaced_after_idling(database_url: str) -> None:
    now = [0.0]
    database = Database(lambda: database_url, idle_check_seconds=30, clock=lambda: now[0])
    first = database.connection()
    pid = first.info.backend_pid
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    now[0] = 60.0  # the container was frozen; the server dropped the socket meanwhile
    second = database.connection()
    assert second.info.backend_pid != pid
    assert second.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    database.discard()


def test_an_unreachable_server_fails_fast_until_cleared() -> None:
    attempts = []

    def conninfo() -> str:
        attempts.append(1)
        return "postgresql://127.0.0.1:1/none?connect_timeout=1"

    database = Database(conninfo)
    for _ in range(3):
        with pytest.raises(DatabaseUnavailable):
            database.connection()
    assert len(attempts) == 1
    database.clear_failure()
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        database.connection()
    assert len(attempts) == 2


@pytest.mark.parametrize(
    "url",
    [
        "host=db.internal user=hookline password=SECRET PW",
        "postgresql://hookline:SEC RET@db.internal/shop",
    ],
)
def test_a_malformed_connection_string_is_never_quoted(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """libpq quotes the text around a fault; a password there must not reach a log,
    a CLI error or a CloudFormation status reason."""
    database = Database(lambda: url)
    with pytest.raises(ConfigurationError) as raised:
        database.connection()
    assert "SEC" not in str(raised.value)
    assert "malformed" in str(raised.value)
    assert main(["migrate", "--database-url", url]) == 3
    error = capsys.readouterr().err
    assert "malformed" in error
    assert "SEC" not in error
