"""`hookline local` runs `sam build` output as Lambda would: only the layers on the path.

So a packaging mistake (a dependency missing from the layer) fails here, not in AWS.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.local_stack import SECRETS_FILE, LocalStackProcess, cli, eventually
from tests.support.postgres import PostgresServer, fresh_database, insert_order

pytestmark = pytest.mark.build


@pytest.fixture
def database(postgres: PostgresServer, schema_template: str) -> Iterator[str]:
    with fresh_database(postgres, schema_template) as url:
        yield url


def test_the_local_stack_runs_the_build_output(
    x86_build: Path, database: str, tmp_path: Path
) -> None:
    with psycopg.connect(database, autocommit=True) as db:
        insert_order(db, "order-build-1", 2000)
    stack = LocalStackProcess.start(
        tmp_path / ".hookline",
        ["--code", "build", "--build-dir", str(x86_build), "--database-url", database],
    )
    try:
        state = stack.state
        assert state["code"] == "build"
        for function in state["functions"].values():
            assert Path(function["code_dir"]).is_relative_to(x86_build)
            assert all(Path(layer).is_relative_to(x86_build) for layer in function["layers"])
        sent = stack.send("stripe", "payment_intent.succeeded", "--order", "order-build-1")
        assert sent["answers"] == {"200": 1}

        def paid() -> bool:
            with psycopg.connect(database) as db:
                row = db.execute("SELECT status FROM orders WHERE id = 'order-build-1'").fetchone()
            return row == ("paid",)

        eventually(paid)
    finally:
        assert stack.stop() == 0, stack.log_tail()


def test_a_dependency_missing_from_a_layer_stops_the_start(
    x86_build: Path, database: str, tmp_path: Path
) -> None:
    broken = tmp_path / "build"
    shutil.copytree(x86_build, broken, symlinks=True)
    shutil.rmtree(broken / "DependenciesLayer" / "python" / "pydantic_core")
    result = cli(
        "local",
        "--port",
        "0",
        "--code",
        "build",
        "--build-dir",
        str(broken),
        "--database-url",
        database,
        "--secrets",
        str(SECRETS_FILE),
        "--data-dir",
        str(tmp_path / ".hookline"),
        timeout=300,
    )
    # A function that cannot start is configuration to fix on this machine (exit 3).
    assert result.returncode == 3, result.stdout[-3000:]
    # One line on stderr says why; the function's own traceback is in the log above it.
    assert "Runtime.ImportModuleError" in result.stderr
    assert "pydantic_core" in result.stderr
    assert "ModuleNotFoundError: No module named 'pydantic_core'" in result.stdout
