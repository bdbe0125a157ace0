"""The SAM template validates, and `sam build` output runs on python3.13 with only its layers.

Slow (two builds, about a minute); marked `build`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hookline import sam
from hookline.migrate import discover

from tests.build.conftest import run_or_fail
from tests.support.apigw import http_event
from tests.support.postgres import PostgresServer, fresh_database

pytestmark = pytest.mark.build

ROOT = Path(__file__).resolve().parents[2]


def test_template_validates_with_lint() -> None:
    run_or_fail(sam.validate())


def test_arm64_build_ships_aarch64_wheels(tmp_path: Path) -> None:
    run_or_fail(sam.build(tmp_path / "arm64"))
    layer = tmp_path / "arm64" / "DependenciesLayer" / "python"
    assert list(layer.glob("pydantic_core/_pydantic_core*aarch64*.so"))
    assert list(layer.glob("psycopg_binary/_psycopg*aarch64*.so"))
    hookline_layer = tmp_path / "arm64" / "HooklineLayer" / "python" / "hookline"
    assert (hookline_layer / "consumer" / "batch.py").exists()
    assert list(layer.glob("crhelper/resource_helper.py"))


def test_the_built_layer_ships_the_migrations(x86_build: Path) -> None:
    """MigrationsFunction applies what the layer holds: exactly db/migrations, as files
    (the package's migrations directory is a link to db/migrations)."""
    source = ROOT / "db" / "migrations"
    assert (ROOT / "shared" / "hookline" / "migrations").resolve() == source
    shipped = x86_build / "HooklineLayer" / "python" / "hookline" / "migrations"
    assert not shipped.is_symlink()
    assert sorted(p.name for p in shipped.iterdir()) == sorted(p.name for p in source.iterdir())
    for path in source.iterdir():
        assert (shipped / path.name).read_bytes() == path.read_bytes(), path.name


def run_function(build: Path, function: str, script: str, env: dict[str, str]) -> str:
    """Run `script` under python3.13 with only the function and its layers importable."""
    python = sam.find_lambda_python() / f"python{sam.LAMBDA_PYTHON}"
    paths = [
        build / function,
        build / "DependenciesLayer" / "python",
        build / "HooklineLayer" / "python",
    ]
    result = subprocess.run(
        [
            str(python),
            "-I",
            "-c",
            f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n" + script,
        ],
        capture_output=True,
        text=True,
        env={
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "hookline",
            "PATH": "/usr/bin:/bin",
            **env,
        },
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


INVOKE = """
import json, app
class Context:
    function_name = "f"; memory_limit_in_mb = 512; aws_request_id = "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    def get_remaining_time_in_millis(self): return 30000
event = json.loads(open({event!r}).read())
print("RESULT " + json.dumps(app.lambda_handler(event, Context())))
"""


def result_of(output: str) -> object:
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines, output[-2000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_receiver_from_the_build_answers(x86_build: Path, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            http_event(
                "POST",
                "/webhooks/nosuch",
                body=b"{}",
                route_key="POST /webhooks/{provider}",
                path_parameters={"provider": "nosuch"},
            )
        )
    )
    output = run_function(
        x86_build,
        "ReceiverFunction",
        INVOKE.format(event=str(event)),
        {"QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q.fifo", "SECRETS_NAME": "s"},
    )
    answer = result_of(output)
    assert isinstance(answer, dict)
    assert answer["statusCode"] == 404


def test_consumer_from_the_build_applies_an_event(
    x86_build: Path, postgres: PostgresServer, schema_template: str
) -> None:
    """psycopg's binary wheel loads from the layer and the apply path works end to end."""
    with fresh_database(postgres, schema_template) as url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            db.execute(
                "INSERT INTO orders (id, amount, currency) VALUES ('order-1001', 2000, 'usd')"
            )
        output = run_function(
            x86_build,
            "ConsumerFunction",
            INVOKE.format(event=str(ROOT / "events" / "consumer-sqs.json")),
            {
                "DATABASE_URL": url,
                "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q.fifo",
                "SECRETS_NAME": "s",
                "IDEMPOTENCY_TABLE": "t",
                # No DynamoDB here; the ledger alone guarantees exactly-once.
                "POWERTOOLS_IDEMPOTENCY_DISABLED": "true",
            },
        )
        assert result_of(output) == {"batchItemFailures": []}
        with psycopg.connect(url) as db:
            assert db.execute("SELECT status FROM orders").fetchone() == ("paid",)


def test_migrations_from_the_build_apply_the_shipped_migrations(
    x86_build: Path, postgres: PostgresServer, tmp_path: Path
) -> None:
    """crhelper loads from the layer, and the function finds the migrations inside it."""
    with fresh_database(postgres, None) as url:
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"action": "migrate"}))
        output = run_function(
            x86_build,
            "MigrationsFunction",
            INVOKE.format(event=str(event)),
            {"DATABASE_URL": url, "DATABASE_SCHEMA": "hookline"},
        )
        names = [f"{m.version}_{m.name}" for m in discover(ROOT / "db" / "migrations")]
        assert result_of(output) == {
            "ok": True,
            "schema": "hookline",
            "applied": names,
            "ahead": [],
        }
