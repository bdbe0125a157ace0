"""Migrations: applied once, in order, recorded; the schema holds every column the code uses."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hookline.cli import main
from hookline.database import Connection
from hookline.errors import MigrationError
from hookline.migrate import Migration, discover, migrate
from psycopg.rows import dict_row

from tests.support.postgres import PostgresServer, fresh_database

ROOT = Path(__file__).resolve().parents[2]

# Every column DESIGN.md names (public contracts), per table.
DESIGN_COLUMNS = {
    "webhook_events": {
        "provider", "event_id", "event_type", "object_id", "occurred_at", "received_at",
        "processed_at", "status", "attempts", "last_error", "payload",
    },
    "orders": {
        "id", "status", "amount", "currency", "paid_amount", "refunded_amount", "updated_at",
    },
    "payments": {
        "provider", "provider_payment_id", "order_id", "status", "amount", "currency",
        "amount_refunded", "last_event_at", "updated_at",
    },
    "parked_events": {"provider", "event_id", "reason", "payload", "parked_at", "resolved_at"},
    "reconciliation_runs": set(),
}  # fmt: skip

DESIGN_STATUSES = {
    # DESIGN.md's five, and `resolved`: a parked event a human closed (migration 0004).
    "webhook_events": {"applied", "stale", "ignored", "orphaned", "parked", "resolved"},
    "orders": {
        "pending", "paid", "partially_refunded", "refunded", "canceled", "payment_failed",
        "amount_mismatch",
    },
    "payments": {
        "pending", "processing", "succeeded", "failed", "canceled", "refunded",
        "partially_refunded",
    },
}  # fmt: skip


def sql_literals(package: Path) -> list[str]:
    """Every string constant in the package (adjacent literals arrive joined)."""
    found = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append(node.value)
    return found


def columns(db: Connection) -> dict[str, set[str]]:
    rows = db.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    ).fetchall()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["table_name"], set()).add(row["column_name"])
    return found


@pytest.fixture
def empty_database(postgres: PostgresServer) -> Iterator[Connection]:
    with (
        fresh_database(postgres, None) as url,
        psycopg.connect(url, autocommit=True, row_factory=dict_row) as connection,
    ):
        yield connection


def test_fresh_database_gets_every_design_table_and_column(empty_database: Connection) -> None:
    applied = migrate(empty_database)
    assert [m.version for m in applied] == [m.version for m in discover()]
    found = columns(empty_database)
    for table, names in DESIGN_COLUMNS.items():
        assert table in found, table
        assert names <= found[table], (table, names - found[table])


def test_columns_the_code_names_all_exist(db: Connection) -> None:
    """No drift: every `table (col, ...)` and `SET col =` in the package's SQL exists."""
    found = columns(db)
    source = "\n".join(sql_literals(ROOT / "shared" / "hookline"))
    checked = 0
    for table, listed in re.findall(r"INSERT INTO (\w+)(?: AS \w+)? \(([^)]*)\)", source):
        for column in (c.strip() for c in listed.split(",")):
            assert column in found[table], f"{table}.{column}"
            checked += 1
    for table, assignments in re.findall(r"UPDATE (\w+) SET (.*?)(?: WHERE|$)", source, re.M):
        for column in re.findall(r"(\w+) = ", assignments):
            assert column in found[table], f"{table}.{column}"
            checked += 1
    assert checked > 40  # the regexes really found the statements


def test_status_columns_accept_exactly_the_design_values(db: Connection) -> None:
    db.execute("INSERT INTO orders (id, amount, currency) VALUES ('o-1', 100, 'usd')")
    for status in DESIGN_STATUSES["orders"]:
        db.execute("UPDATE orders SET status = %s WHERE id = 'o-1'", (status,))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE orders SET status = 'shipped' WHERE id = 'o-1'")
    for status in DESIGN_STATUSES["payments"]:
        db.execute(
            "INSERT INTO payments (provider, provider_payment_id, status) VALUES ('p', %s, %s)",
            (status, status),
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO payments (provider, provider_payment_id, status) VALUES ('p', 'x', 'ok')"
        )
    for status in DESIGN_STATUSES["webhook_events"]:
        db.execute(
            "INSERT INTO webhook_events (provider, event_id, event_type, received_at, status,"
            " payload) VALUES ('p', %s, 't', now(), %s, '{}')",
            (status, status),
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO webhook_events (provider, event_id, event_type, received_at, status,"
            " payload) VALUES ('p', 'x', 't', now(), 'done', '{}')"
        )


def test_an_order_needs_amount_and_currency(db: Connection) -> None:
    with pytest.raises(psycopg.errors.NotNullViolation):
        db.execute("INSERT INTO orders (id) VALUES ('o-empty')")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO orders (id, amount, currency) VALUES ('o-2', 100, 'dollars')")
    db.execute("INSERT INTO orders (id, amount, currency) VALUES ('o-3', 100, 'EUR')")
    row = db.execute("SELECT status, paid_amount, refunded_amount FROM orders").fetchone()
    assert row == {"status": "pending", "paid_amount": 0, "refunded_amount": 0}


def test_running_twice_changes_nothing(empty_database: Connection) -> None:
    migrate(empty_database)
    before = columns(empty_database)
    assert migrate(empty_database) == []
    assert columns(empty_database) == before
    count = empty_database.execute("SELECT count(*) AS n FROM schema_migrations").fetchone()
    assert count == {"n": len(discover())}


def test_an_edited_migration_is_refused(empty_database: Connection) -> None:
    migrations = discover()
    migrate(empty_database, migrations)
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in migrations]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(empty_database, edited)


def test_a_failing_migration_leaves_nothing_half_applied(empty_database: Connection) -> None:
    broken = [
        Migration("0001", "good", "CREATE TABLE a (x int);"),
        Migration("0002", "bad", "CREATE TABLE b (y int); SELECT no_such_function();"),
    ]
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate(empty_database, broken)
    names = columns(empty_database)
    assert "a" in names
    assert "b" not in names
    versions = empty_database.execute("SELECT version FROM schema_migrations").fetchall()
    assert versions == [{"version": "0001"}]


def test_cli_migrate_applies_then_reports_up_to_date(
    postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_database(postgres, None) as url:
        assert main(["migrate", "--database-url", url, "--dry-run", "--json"]) == 0
        assert '"pending": ["0001_initial"' in capsys.readouterr().out
        assert main(["migrate", "--database-url", url]) == 0
        assert "Applied 0001_initial" in capsys.readouterr().out
        assert main(["migrate", "--database-url", url]) == 0
        assert "up to date" in capsys.readouterr().out


def test_cli_migrate_without_a_database_says_how(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["migrate"]) == 3  # configuration to fix on this machine
    assert capsys.readouterr().err == (
        "hookline migrate: set DATABASE_URL or pass --database-url\n"
    )


def test_cli_migrate_reports_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["migrate", "--database-url", "postgresql://127.0.0.1:1/none?connect_timeout=1"])
    assert code == 5  # unavailable
    error = capsys.readouterr().err
    assert error.startswith("hookline migrate: OperationalError")
    assert len(error.splitlines()) == 1
