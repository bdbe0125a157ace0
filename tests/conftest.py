from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hookline.consumer.build import consumer
from hookline.database import Connection
from hookline.local.sandbox import ProviderSandbox, serve
from hookline.receiver.api import intake
from hookline.reconcile.build import reconciler
from moto import mock_aws
from psycopg.rows import dict_row

from tests.support.lambda_context import FakeLambdaContext
from tests.support.pipeline import Pipeline
from tests.support.postgres import PostgresServer, empty_tables, fresh_database, migrated_template
from tests.support.samples import SQUARE_URL
from tests.support.stack import Stack, create_stack, default_secret_document, load_function

MERCADOPAGO_TOKEN = "TEST-0000-fake-mercadopago-access-token"

AWS_TEST_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto with fake credentials; nothing can reach real AWS."""
    for name, value in AWS_TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def stack(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The receiver's queues, secret and environment, from template.yaml."""
    created = create_stack()
    for name, value in created.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SQUARE_NOTIFICATION_URL", SQUARE_URL)
    intake.cache_clear()
    yield created
    intake.cache_clear()


class _CurrentStdout(io.TextIOBase):
    """Writes to whatever sys.stdout is now, so pytest's per-test capture sees log lines."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(autouse=True, scope="session")
def _logs_follow_stdout() -> None:
    # Powertools' log handler keeps the stdout it saw at import (pytest's
    # collection-time capture, closed later).
    from hookline.observability import logger

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    handler.stream = _CurrentStdout()


@pytest.fixture
def output(capsys: pytest.CaptureFixture[str]) -> pytest.CaptureFixture[str]:
    """Log lines and metrics as the function prints them."""
    return capsys


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (see tests/support/postgres.py for which one)."""
    with PostgresServer.start() as server:
        yield server


@pytest.fixture(scope="session")
def schema_template(postgres: PostgresServer) -> Iterator[str]:
    with migrated_template(postgres) as name:
        yield name


@pytest.fixture
def database_url(postgres: PostgresServer, schema_template: str) -> Iterator[str]:
    """A migrated database of this test's own, dropped afterwards."""
    with fresh_database(postgres, schema_template) as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(postgres: PostgresServer, schema_template: str) -> Iterator[str]:
    """One migrated database for a module whose tests each start from emptied tables: a
    module overrides `database_url` with `emptied_database_url` when its tests create
    nothing but rows (a fresh database per test costs a second)."""
    with fresh_database(postgres, schema_template) as url:
        yield url


@pytest.fixture
def emptied_database_url(module_database_url: str) -> str:
    empty_tables(module_database_url)
    return module_database_url


@pytest.fixture
def db(database_url: str) -> Iterator[Connection]:
    """A connection for the test's own assertions and set-up (autocommit)."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as connection:
        yield connection


@pytest.fixture
def mercadopago_api() -> Iterator[ProviderSandbox]:
    with serve(ProviderSandbox(mercadopago_token=MERCADOPAGO_TOKEN)) as sandbox:
        yield sandbox


@pytest.fixture
def pipeline(
    stack: Stack,
    database_url: str,
    mercadopago_api: ProviderSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Pipeline]:
    """ConsumerFunction on the template's queue and idempotency table, a test database,
    and a fake Mercado Pago API. Failed messages come back at once (retry bases 0)."""
    for name, value in stack.consumer_environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MERCADOPAGO_API_URL", mercadopago_api.mercadopago_url)
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0")
    monkeypatch.setenv("RETRY_PERMANENT_SECONDS", "0")
    stack.put_secret({**default_secret_document(), "mercadopago_access_token": MERCADOPAGO_TOKEN})
    consumer.cache_clear()
    app = load_function("consumer")
    yield Pipeline(stack, app.lambda_handler)
    consumer.cache_clear()


UNREACHABLE_DATABASE = "postgresql://hookline@127.0.0.1:1/none"


def point_reconciler_at(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """The reconciler's database from now on (it is rebuilt on its next call)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    reconciler.cache_clear()


@pytest.fixture
def reconcile(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """ReconcilerFunction's real handler with the template's environment (MAX_REDRIVES 3),
    on the pipeline's queues and database. Built on its first call, so a test may
    change the environment first."""
    for name, value in pipeline.stack.reconciler_environment.items():
        if name != "DATABASE_URL":
            monkeypatch.setenv(name, value)
    reconciler.cache_clear()
    app = load_function("reconciler")

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = app.lambda_handler(
            event,
            # template.yaml's Timeout for ReconcilerFunction.
            FakeLambdaContext(function_name="hookline-ReconcilerFunction", timeout_seconds=120.0),
        )
        return answer

    yield invoke
    reconciler.cache_clear()
