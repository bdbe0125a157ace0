"""Migrations on every deploy: the `Migrations` custom resource and `hookline migrate --stack`.

CloudFormation's requests are sent as CloudFormation sends them, to
functions/migrations/app.py as Lambda runs it, against real PostgreSQL. crhelper's
answer is the HTTPS PUT CloudFormation would receive on its presigned S3 URL: a
local TLS server (its CA trusted through SSL_CERT_FILE, as OpenSSL reads it) records
it, so the Status, Reason, PhysicalResourceId and Data asserted are what a deploy sees.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import shutil
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest.mock import patch
from urllib.parse import quote

import boto3
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hookline import remote
from hookline.cli import main
from hookline.deploy_migrations import MigrationsFunction, build_migrator, migrations_function
from hookline.migrate import MIGRATION_LOCK_ID, discover
from hookline.settings import DatabaseSettings
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from psycopg.conninfo import make_conninfo

from tests.support.lambda_context import FakeLambdaContext
from tests.support.postgres import PostgresServer, fresh_database
from tests.support.shop import dump_schema
from tests.support.stack import load_function

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "db" / "migrations"
ALL = [f"{m.version}_{m.name}" for m in discover(MIGRATIONS)]

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK_NAME = "hookline-prod"
STACK_ID = (
    f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}"
    "/5b9a7f30-8f4e-11ef-9d7a-0a1b2c3d4e5f"
)
FUNCTION_NAME = f"{STACK_NAME}-MigrationsFunction-Xq2Lr8tKp1Vd"
SERVICE_TOKEN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION_NAME}"
LAYER = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:HooklineLayer91d9333e3a:%d"
# In the URL, never to be logged or echoed: trust auth accepts any password.
PASSWORD = "s3cret-db-password"


# ---------------------------------------------------------------- CloudFormation's side


@dataclass
class Answer:
    path: str
    content_type: str | None
    body: dict[str, Any]


@dataclass
class ResponseBucket:
    """Stands in for CloudFormation's presigned S3 URLs: records each PUT."""

    port: int
    answers: list[Answer] = field(default_factory=list)

    def url(self, request_id: str) -> str:
        key = quote(f"{STACK_ID}|Migrations|{request_id}", safe="")
        return (
            f"https://127.0.0.1:{self.port}/{key}"
            "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260101T000000Z"
            "&X-Amz-Expires=7200&X-Amz-Signature=0f1e2d3c4b5a"
        )

    def answer_to(self, request: dict[str, Any]) -> Answer:
        wanted = request["ResponseURL"].split("/", 3)[3]
        found = [answer for answer in self.answers if answer.path == "/" + wanted]
        assert len(found) == 1, self.answers
        return found[0]


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 it signed: (ca, certificate, key) files."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hookline test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture
def bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponseBucket]:
    ca, certificate, key = _certificates(tmp_path)
    answers: list[Answer] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers["Content-Length"])
            answers.append(
                Answer(
                    self.path,
                    self.headers.get("Content-Type"),
                    json.loads(self.rfile.read(length)),
                )
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # crhelper verifies the certificate as it would S3's, against the default CA store.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    try:
        yield ResponseBucket(server.server_address[1], answers)
    finally:
        server.shutdown()
        server.server_close()


def properties(schema: str = "hookline", layer_version: int = 2) -> dict[str, Any]:
    """ResourceProperties as CloudFormation passes them: every value a string."""
    return {
        "ServiceToken": SERVICE_TOKEN,
        "ServiceTimeout": "360",
        "HooklineLayer": LAYER % layer_version,
        "Schema": schema,
        "DatabaseSecretName": "",
    }


def cfn_request(
    bucket: ResponseBucket,
    kind: str,
    *,
    physical_id: str | None = None,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    request: dict[str, Any] = {
        "RequestType": kind,
        "ServiceToken": SERVICE_TOKEN,
        "ResponseURL": bucket.url(request_id),
        "StackId": STACK_ID,
        "RequestId": request_id,
        "LogicalResourceId": "Migrations",
        "ResourceType": "Custom::Migrations",
        "ResourceProperties": new or properties(),
    }
    if kind != "Create":
        assert physical_id is not None
        request["PhysicalResourceId"] = physical_id
    if kind == "Update":
        request["OldResourceProperties"] = old or properties(layer_version=1)
    return request


def context() -> FakeLambdaContext:
    # The function's Timeout: crhelper's own default would sleep 120 s before a Delete answer.
    return FakeLambdaContext(
        function_name=FUNCTION_NAME,
        invoked_function_arn=SERVICE_TOKEN,
        log_group_name=f"/aws/lambda/{FUNCTION_NAME}",
        timeout_seconds=300,
    )


# ---------------------------------------------------------------- the database's side


def with_password(url: str) -> str:
    return make_conninfo(url, password=PASSWORD)


def history(url: str, schema: str = "hookline") -> list[tuple[str, Any]]:
    with psycopg.connect(url, autocommit=True) as db:
        rows = db.execute(
            f"SELECT version || '_' || name, applied_at FROM {schema}.schema_migrations"  # noqa: S608 - a test's own schema name
            " ORDER BY version"
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def schema_exists(url: str, schema: str = "hookline") -> bool:
    with psycopg.connect(url, autocommit=True) as db:
        found = db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return found is not None


@pytest.fixture
def empty_database(postgres: PostgresServer) -> Iterator[str]:
    with fresh_database(postgres, None) as url:
        yield url


@pytest.fixture
def migrated_database(postgres: PostgresServer, schema_template: str) -> Iterator[str]:
    with fresh_database(postgres, schema_template) as url:
        yield url


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The function's environment as template.yaml sets it (DATABASE_URL for development)."""
    for name, value in {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DATABASE_SECRET_NAME": "",
        "DATABASE_SCHEMA": "hookline",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HOOKLINE_MIGRATIONS", raising=False)
    migrations_function.cache_clear()
    yield
    migrations_function.cache_clear()


@pytest.fixture(scope="module")
def app() -> ModuleType:
    return load_function("migrations")


def deploy(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch, url: str, request: dict[str, Any]
) -> Any:
    monkeypatch.setenv("DATABASE_URL", with_password(url))
    migrations_function.cache_clear()
    return app.lambda_handler(request, context())


def migrations_directory(tmp_path: Path, extra: dict[str, str]) -> Path:
    """The shipped migrations plus `extra` files, as HOOKLINE_MIGRATIONS."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, directory)
    for name, text in extra.items():
        (directory / name).write_text(text)
    return directory


# ---------------------------------------------------------------- Create, Update, Delete


@pytest.mark.usefixtures("function_env")
def test_create_on_an_empty_database_applies_every_migration_once(
    app: ModuleType,
    bucket: ResponseBucket,
    empty_database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request = cfn_request(bucket, "Create")
    assert deploy(app, monkeypatch, empty_database, request) is None

    answer = bucket.answer_to(request)
    # A presigned S3 PUT is signed with an empty Content-Type: crhelper sends it so.
    assert answer.content_type == ""
    assert answer.body == {
        "Status": "SUCCESS",
        "Reason": "",
        "PhysicalResourceId": "hookline-migrations-hookline",
        "StackId": STACK_ID,
        "RequestId": request["RequestId"],
        "LogicalResourceId": "Migrations",
        "Data": {"Schema": "hookline", "Applied": ",".join(ALL), "Ahead": ""},
        "NoEcho": False,
    }
    assert [version for version, _ in history(empty_database)] == ALL
    logged = capsys.readouterr().out
    assert "migrations applied" in logged
    # Neither the presigned URL nor the password reaches the logs.
    assert "X-Amz-Signature" not in logged
    assert PASSWORD not in logged


@pytest.mark.usefixtures("function_env")
def test_a_first_deploy_of_a_long_history_answers_within_cloudformations_limit(
    app: ModuleType,
    bucket: ResponseBucket,
    empty_database: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    directory = tmp_path / "long-history"
    directory.mkdir()
    for number in range(1, 151):
        (directory / f"{number:04d}_a_step_with_a_long_descriptive_name.sql").write_text(
            f"CREATE TABLE step_{number} (id int);"
        )
    monkeypatch.setenv("HOOKLINE_MIGRATIONS", str(directory))
    request = cfn_request(bucket, "Create")
    deploy(app, monkeypatch, empty_database, request)

    body = bucket.answer_to(request).body
    assert body["Status"] == "SUCCESS", body["Reason"]
    # CloudFormation refuses a response body over 4096 bytes.
    assert len(json.dumps(body)) < 4096
    assert body["Data"]["Applied"].startswith("0001_a_step_with_a_long_descriptive_name,")
    assert body["Data"]["Applied"].endswith(" more")
    assert len(history(empty_database)) == 150


@pytest.mark.usefixtures("function_env")
def test_update_with_nothing_pending_applies_nothing_and_keeps_the_physical_id(
    app: ModuleType, bucket: ResponseBucket, migrated_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = history(migrated_database)
    request = cfn_request(bucket, "Update", physical_id="hookline-migrations-hookline")
    deploy(app, monkeypatch, migrated_database, request)

    body = bucket.answer_to(request).body
    assert body["Status"] == "SUCCESS", body
    assert body["PhysicalResourceId"] == "hookline-migrations-hookline"
    assert body["Data"] == {"Schema": "hookline", "Applied": "", "Ahead": ""}
    assert history(migrated_database) == before


@pytest.mark.usefixtures("function_env")
def test_update_applies_a_new_migration_once(
    app: ModuleType,
    bucket: ResponseBucket,
    migrated_database: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    directory = migrations_directory(
        tmp_path, {"0900_add_a_column.sql": "ALTER TABLE orders ADD COLUMN note text;"}
    )
    monkeypatch.setenv("HOOKLINE_MIGRATIONS", str(directory))
    for layer_version in (3, 4):
        request = cfn_request(
            bucket,
            "Update",
            physical_id="hookline-migrations-hookline",
            new=properties(layer_version=layer_version),
        )
        deploy(app, monkeypatch, migrated_database, request)
        body = bucket.answer_to(request).body
        assert body["Status"] == "SUCCESS", body
        expected = "0900_add_a_column" if layer_version == 3 else ""
        assert body["Data"]["Applied"] == expected
    assert [version for version, _ in history(migrated_database)] == [*ALL, "0900_add_a_column"]


def waiting_for_the_lock(admin: psycopg.Connection[Any]) -> int:
    row = admin.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.usefixtures("function_env")
def test_two_concurrent_creates_apply_each_migration_once(
    bucket: ResponseBucket, empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)
    # Two Lambda containers: each its own function object (crhelper keeps request state).
    containers = [
        MigrationsFunction(lambda: build_migrator(DatabaseSettings.from_env())) for _ in range(2)
    ]
    requests = [cfn_request(bucket, "Create") for _ in containers]
    with psycopg.connect(empty_database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        threads = [
            threading.Thread(target=function.handle, args=(request, context()))
            for function, request in zip(containers, requests, strict=True)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while waiting_for_the_lock(holder) < 2:
            assert time.monotonic() < deadline, "the migrators never waited for the lock"
            assert all(thread.is_alive() for thread in threads)
            time.sleep(0.05)
        assert bucket.answers == []  # neither answered while the lock was held
        assert not schema_exists(empty_database)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
        for thread in threads:
            thread.join(60)
    bodies = [bucket.answer_to(request).body for request in requests]
    assert [body["Status"] for body in bodies] == ["SUCCESS", "SUCCESS"], bodies
    applied = sorted(body["Data"]["Applied"] for body in bodies)
    assert applied == ["", ",".join(ALL)]  # one applied everything, the other nothing
    assert [version for version, _ in history(empty_database)] == ALL


@pytest.mark.usefixtures("function_env")
def test_delete_changes_nothing(
    app: ModuleType, bucket: ResponseBucket, migrated_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dump_schema(migrated_database, "hookline")
    started = time.monotonic()
    request = cfn_request(bucket, "Delete", physical_id="hookline-migrations-hookline")
    deploy(app, monkeypatch, migrated_database, request)

    body = bucket.answer_to(request).body
    assert body["Status"] == "SUCCESS", body
    assert body["PhysicalResourceId"] == "hookline-migrations-hookline"
    assert dump_schema(migrated_database, "hookline") == before
    # crhelper's default waits 120 s before answering a Delete; ours answers at once.
    assert time.monotonic() - started < 30


@pytest.mark.usefixtures("function_env")
def test_delete_answers_even_when_the_database_is_gone(
    app: ModuleType, bucket: ResponseBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = cfn_request(bucket, "Delete", physical_id="hookline-migrations-hookline")
    deploy(app, monkeypatch, "postgresql://127.0.0.1:1/gone", request)
    assert bucket.answer_to(request).body["Status"] == "SUCCESS"


@pytest.mark.usefixtures("function_env")
def test_a_failing_migration_answers_failed_with_its_reason_and_leaves_nothing_half_applied(
    app: ModuleType,
    bucket: ResponseBucket,
    empty_database: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = migrations_directory(
        tmp_path,
        {"0900_broken.sql": "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"},
    )
    monkeypatch.setenv("HOOKLINE_MIGRATIONS", str(directory))
    request = cfn_request(bucket, "Create")
    deploy(app, monkeypatch, empty_database, request)

    body = bucket.answer_to(request).body
    assert body["Status"] == "FAILED"
    reason = body["Reason"]
    assert reason.startswith("UndefinedFunction: function no_such_function() does not exist")
    assert reason.endswith("in migration 0900_broken")
    assert "\n" not in reason
    assert len(reason) <= 256
    assert PASSWORD not in json.dumps(body)
    # The earlier files committed one by one; the broken one left nothing behind.
    assert [version for version, _ in history(empty_database)] == ALL
    with psycopg.connect(empty_database, autocommit=True) as db:
        assert db.execute("SELECT to_regclass('hookline.half_done')").fetchone() == (None,)
    output = capsys.readouterr().out
    assert '"MigrationsFailed"' in output  # the metric MigrationsErrorsAlarm watches
    assert PASSWORD not in output


@pytest.mark.usefixtures("function_env")
def test_an_unreachable_database_answers_failed(
    app: ModuleType, bucket: ResponseBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = cfn_request(bucket, "Create")
    deploy(app, monkeypatch, f"postgresql://hookline:{PASSWORD}@127.0.0.1:1/shop", request)
    body = bucket.answer_to(request).body
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith("OperationalError: connection")
    assert PASSWORD not in body["Reason"]


@pytest.mark.usefixtures("function_env")
def test_a_missing_database_setting_answers_failed_instead_of_leaving_cloudformation_waiting(
    app: ModuleType, bucket: ResponseBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    migrations_function.cache_clear()
    request = cfn_request(bucket, "Create")
    app.lambda_handler(request, context())
    body = bucket.answer_to(request).body
    assert body["Status"] == "FAILED"
    assert "DATABASE_URL or DATABASE_SECRET_NAME" in body["Reason"]


@pytest.mark.usefixtures("function_env")
def test_a_rollback_to_code_behind_the_schema_succeeds_and_applies_its_own_pending(
    app: ModuleType,
    bucket: ResponseBucket,
    migrated_database: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The new release's migration ran, then the deploy failed: CloudFormation rolls
    # back with the previous properties, so the previous code meets a newer schema.
    with psycopg.connect(migrated_database, autocommit=True) as db:
        db.execute("ALTER TABLE orders ADD COLUMN gift_note text")
        db.execute(
            "INSERT INTO schema_migrations (version, name, checksum)"
            " VALUES ('0950', 'add_gift_note', 'a-newer-release')"
        )
    directory = migrations_directory(
        tmp_path, {"0900_add_an_index.sql": "CREATE INDEX orders_currency ON orders (currency);"}
    )
    monkeypatch.setenv("HOOKLINE_MIGRATIONS", str(directory))
    request = cfn_request(
        bucket,
        "Update",
        physical_id="hookline-migrations-hookline",
        new=properties(layer_version=1),
        old=properties(layer_version=2),
    )
    deploy(app, monkeypatch, migrated_database, request)

    body = bucket.answer_to(request).body
    assert body["Status"] == "SUCCESS", body
    assert body["Data"] == {
        "Schema": "hookline",
        "Applied": "0900_add_an_index",
        "Ahead": "0950_add_gift_note",
    }
    assert [v for v, _ in history(migrated_database)][-2:] == [
        "0900_add_an_index",
        "0950_add_gift_note",
    ]
    assert "schema is ahead of this code" in capsys.readouterr().out


@pytest.mark.usefixtures("function_env")
def test_an_edited_migration_still_fails_when_the_schema_is_ahead(
    app: ModuleType,
    bucket: ResponseBucket,
    migrated_database: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    with psycopg.connect(migrated_database, autocommit=True) as db:
        db.execute(
            "INSERT INTO schema_migrations (version, name, checksum)"
            " VALUES ('0950', 'add_gift_note', 'a-newer-release')"
        )
    directory = migrations_directory(tmp_path, {})
    first = sorted(directory.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")
    monkeypatch.setenv("HOOKLINE_MIGRATIONS", str(directory))
    request = cfn_request(bucket, "Update", physical_id="hookline-migrations-hookline")
    deploy(app, monkeypatch, migrated_database, request)

    body = bucket.answer_to(request).body
    assert body["Status"] == "FAILED"
    assert f"migration {ALL[0]} changed after it was applied" in body["Reason"]


@pytest.mark.usefixtures("function_env")
def test_a_schema_of_its_own_per_stack(
    app: ModuleType, bucket: ResponseBucket, empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_SCHEMA", "hookline_staging")
    request = cfn_request(bucket, "Create", new=properties(schema="hookline_staging"))
    deploy(app, monkeypatch, empty_database, request)
    body = bucket.answer_to(request).body
    assert body["Status"] == "SUCCESS", body
    assert body["PhysicalResourceId"] == "hookline-migrations-hookline_staging"
    assert [v for v, _ in history(empty_database, "hookline_staging")] == ALL
    assert not schema_exists(empty_database, "hookline")


# ---------------------------------------------------------------- direct invoke


@pytest.mark.usefixtures("function_env")
def test_direct_invoke_lists_then_applies(
    app: ModuleType, empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = deploy(app, monkeypatch, empty_database, {"action": "migrate", "dry_run": True})
    assert listed == {"ok": True, "schema": "hookline", "pending": ALL, "ahead": []}
    assert not schema_exists(empty_database)  # a dry run creates nothing

    applied = deploy(app, monkeypatch, empty_database, {"action": "migrate"})
    assert applied == {"ok": True, "schema": "hookline", "applied": ALL, "ahead": []}
    again = deploy(app, monkeypatch, empty_database, {"action": "migrate"})
    assert again == {"ok": True, "schema": "hookline", "applied": [], "ahead": []}


@pytest.mark.usefixtures("function_env")
def test_direct_invoke_failures_are_answered(
    app: ModuleType, empty_database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = migrations_directory(tmp_path, {"0900_broken.sql": "SELECT 1/0;"})
    monkeypatch.setenv("HOOKLINE_MIGRATIONS", str(directory))
    failed = deploy(app, monkeypatch, empty_database, {"action": "migrate"})
    assert failed == {
        "ok": False,
        "error": "DivisionByZero: division by zero in migration 0900_broken",
    }
    assert deploy(app, monkeypatch, empty_database, {"action": "nosuch"})["ok"] is False
    bad = deploy(app, monkeypatch, empty_database, {"action": "migrate", "dry_run": "yes"})
    assert bad == {"ok": False, "error": "dry_run must be true or false"}


# ---------------------------------------------------------------- hookline migrate --stack


@dataclass
class DeployedStack:
    invocations: list[dict[str, Any]]


@pytest.fixture
def deployed(
    app: ModuleType,
    empty_database: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    function_env: None,
) -> Iterator[DeployedStack]:
    """A stack in moto whose outputs name the function. moto runs Lambda code only in
    Docker: its invoke alone is replaced, by this process running app.py as Lambda would."""
    monkeypatch.setenv("DATABASE_URL", empty_database)
    # The operator's shell names no region: --region or the profile's decides.
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # A profile for `--profile`: the stack lives in its region only.
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile ops]\nregion = eu-west-1\naws_access_key_id = testing\n"
        "aws_secret_access_key = testing\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    invocations: list[dict[str, Any]] = []

    def run_in_process(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        event = json.loads(body)
        invocations.append({"function": function_name, "event": event})
        # The function's own environment has the region, as Lambda's always does.
        with patch.dict(os.environ, {"AWS_DEFAULT_REGION": REGION}):
            return json.dumps(app.lambda_handler(event, context())).encode()

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", run_in_process)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        for region in ("eu-west-1", REGION):
            iam = boto3.client("iam", region_name=region)
            role = iam.create_role(
                RoleName=f"migrations-{region}",
                AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
            )["Role"]["Arn"]
            boto3.client("lambda", region_name=region).create_function(
                FunctionName=FUNCTION_NAME,
                Runtime="python3.13",
                Role=role,
                Handler="app.lambda_handler",
                Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
            )
        template = {
            "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {
                remote.MIGRATIONS_OUTPUT: {"Value": FUNCTION_NAME},
                remote.RECONCILER_OUTPUT: {"Value": "not-this-one"},
            },
        }
        boto3.client("cloudformation", region_name="eu-west-1").create_stack(
            StackName=STACK_NAME, TemplateBody=json.dumps(template)
        )
        yield DeployedStack(invocations)


def printed(out: str) -> list[str]:
    """What the CLI printed, without the in-process function's own log lines."""
    return [line for line in out.splitlines() if not line.startswith('{"level":')]


def test_migrate_stack_lists_then_applies_through_the_deployed_function(
    deployed: DeployedStack, empty_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = ["--stack", STACK_NAME, "--profile", "ops"]
    assert main(["migrate", *stack, "--dry-run"]) == 0, capsys.readouterr().err
    assert printed(capsys.readouterr().out) == [
        f"Would apply {name} in schema hookline" for name in ALL
    ]
    assert not schema_exists(empty_database)

    assert main(["migrate", *stack, "--json"]) == 0, capsys.readouterr().err
    (line,) = printed(capsys.readouterr().out)
    answer = json.loads(line)
    assert answer == {"ok": True, "schema": "hookline", "applied": ALL, "ahead": []}
    assert [version for version, _ in history(empty_database)] == ALL

    assert main(["migrate", *stack]) == 0
    assert printed(capsys.readouterr().out) == ["Schema hookline is up to date."]
    assert [call["event"] for call in deployed.invocations] == [
        {"action": "migrate", "dry_run": True},
        {"action": "migrate", "dry_run": False},
        {"action": "migrate", "dry_run": False},
    ]
    assert {call["function"] for call in deployed.invocations} == {FUNCTION_NAME}


def test_migrate_stack_reports_a_failure_and_exits_non_zero(
    deployed: DeployedStack,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = migrations_directory(tmp_path, {"0900_broken.sql": "SELECT 1/0;"})
    monkeypatch.setenv("HOOKLINE_MIGRATIONS", str(directory))
    assert main(["migrate", "--stack", STACK_NAME, "--region", "eu-west-1"]) == 1
    assert capsys.readouterr().err == (
        "hookline migrate: DivisionByZero: division by zero in migration 0900_broken\n"
    )


def test_migrate_stack_names_what_is_wrong_with_the_stack(
    deployed: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stack is in the profile's region, not in this one.
    assert main(["migrate", "--stack", STACK_NAME, "--region", REGION]) == 4  # not found
    assert capsys.readouterr().err == (
        f"hookline migrate: cannot read stack {STACK_NAME} in {REGION}:"
        f" Stack with id {STACK_NAME} does not exist\n"
    )
    assert main(["migrate", "--stack", STACK_NAME, "--profile", "ops", "--schema", "x"]) == 2
    assert "--schema" in capsys.readouterr().err
    assert deployed.invocations == []
