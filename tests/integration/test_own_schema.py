"""hookline lives in a schema of its own beside a shop's tables, and never touches them.

The shop's database here is a typical one: `public.orders`, `public.payments`,
`public.refunds` (the very names hookline uses) and even a `public.schema_migrations`
of its own migration tool, all holding rows. Whatever hookline does, `pg_dump
--schema=public` must not change by a byte.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hookline.cli import main
from hookline.consumer.build import consumer
from hookline.database import Database, connect
from hookline.errors import ConfigurationError, DatabaseUnavailable
from hookline.migrate import discover, migrate, pending
from hookline.schema import schema_name
from psycopg import sql

from tests.support import samples
from tests.support.apigw import webhook_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.pipeline import Pipeline
from tests.support.postgres import PostgresServer, fresh_database, in_schema, insert_order
from tests.support.shop import create_shop_schema, dump_schema
from tests.support.signers import sign
from tests.support.stack import load_function

ROOT = Path(__file__).resolve().parents[2]
RECEIVER = load_function("receiver")


def tables(url: str, schema: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as db:
        rows = db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def shop(postgres: PostgresServer) -> Iterator[tuple[str, str]]:
    """A shop's database with its own tables and rows, and hookline not yet in it:
    (url, pg_dump of public before hookline)."""
    with fresh_database(postgres, None) as url:
        create_shop_schema(url)
        yield url, dump_schema(url, "public")


@pytest.fixture
def database_url(shop: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> str:
    """The shop's database, migrated the way a team does it (the pipeline fixture uses it)."""
    url, _ = shop
    assert main(["migrate", "--database-url", url]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return url


def test_migrate_beside_a_shops_tables_creates_hookline_and_leaves_public_untouched(
    shop: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, public_before = shop
    shop_tables = tables(url, "public")

    assert main(["migrate", "--database-url", url]) == 0, capsys.readouterr().err
    assert "in schema hookline" in capsys.readouterr().out

    assert dump_schema(url, "public") == public_before
    assert tables(url, "public") == shop_tables
    assert {"webhook_events", "orders", "payments", "refunds", "parked_events"} <= tables(
        url, "hookline"
    )
    assert "schema_migrations" in tables(url, "hookline")
    # Run again: nothing to do, still nothing outside the schema.
    assert main(["migrate", "--database-url", url]) == 0
    assert "Schema hookline is up to date." in capsys.readouterr().out
    assert dump_schema(url, "public") == public_before


def test_a_stripe_payment_applies_end_to_end_beside_the_shops_tables(
    shop: tuple[str, str], database_url: str, pipeline: Pipeline
) -> None:
    _, public_before = shop
    with connect(database_url) as db:
        insert_order(db, "order-1001", 2000, "usd")

    signed = sign("stripe", samples.encode(samples.stripe_event()), timestamp=int(time.time()))
    answer = RECEIVER.lambda_handler(webhook_event("stripe", signed.request), FakeLambdaContext())
    assert answer["statusCode"] == 200, answer
    pipeline.drain()

    with connect(database_url) as db:
        order = db.execute("SELECT status, paid_amount FROM orders").fetchone()
        ledger = db.execute("SELECT status FROM webhook_events").fetchall()
    assert order == {"status": "paid", "paid_amount": 2000}
    assert ledger == [{"status": "applied"}]
    assert dump_schema(database_url, "public") == public_before


def test_two_schemas_in_one_database_never_cross(
    shop: tuple[str, str], pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging and prod stacks sharing one database: each consumer sees its schema alone."""
    url, public_before = shop
    for schema in ("hookline_staging", "hookline_prod"):
        with connect(url, schema) as db:
            migrate(db, schema=schema)
            insert_order(db, "order-1001", 2000, "USD")
    monkeypatch.setenv("DATABASE_URL", url)

    def deliver(schema: str, event_id: str) -> None:
        monkeypatch.setenv("DATABASE_SCHEMA", schema)
        consumer.cache_clear()
        signed = sign(
            "stripe", samples.encode(samples.stripe_event(event_id)), timestamp=int(time.time())
        )
        answer = RECEIVER.lambda_handler(
            webhook_event("stripe", signed.request), FakeLambdaContext()
        )
        assert answer["statusCode"] == 200, answer
        pipeline.drain()

    deliver("hookline_staging", "evt_staging_1")
    deliver("hookline_prod", "evt_prod_1")

    for schema, event_id in (
        ("hookline_staging", "evt_staging_1"),
        ("hookline_prod", "evt_prod_1"),
    ):
        with connect(url, schema) as db:
            events = [r["event_id"] for r in db.execute("SELECT event_id FROM webhook_events")]
            order = db.execute("SELECT status FROM orders WHERE id = 'order-1001'").fetchone()
        assert events == [event_id], schema
        assert order == {"status": "paid"}, schema
    with connect(url) as db:  # the pipeline's own, default schema saw nothing either
        assert db.execute("SELECT count(*) AS n FROM webhook_events").fetchone() == {"n": 0}
    assert dump_schema(url, "public") == public_before


def test_dry_run_creates_nothing(shop: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    url, public_before = shop
    assert main(["migrate", "--database-url", url, "--dry-run", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["schema"] == "hookline"
    assert answer["pending"] == [f"{m.version}_{m.name}" for m in discover()]
    with psycopg.connect(url) as db:
        found = db.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'hookline'").fetchone()
    assert found is None
    assert dump_schema(url, "public") == public_before


def test_schema_from_the_environment_and_the_flag(
    shop: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = shop
    monkeypatch.setenv("DATABASE_SCHEMA", "hookline_env")
    assert main(["migrate", "--database-url", url]) == 0
    assert main(["migrate", "--database-url", url, "--schema", "hookline_flag"]) == 0
    capsys.readouterr()
    assert "webhook_events" in tables(url, "hookline_env")
    assert "webhook_events" in tables(url, "hookline_flag")
    assert "webhook_events" not in tables(url, "hookline")


@pytest.mark.parametrize(
    "bad", ["Hookline", "hook-line", "1hookline", "pg_hookline", "information_schema", "", "a" * 57]
)
def test_an_unusable_schema_name_is_refused_before_connecting(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigurationError):
        schema_name(bad)
    code = main(["migrate", "--database-url", "postgresql://127.0.0.1:1/none", "--schema", bad])
    assert code == 2
    assert "schema" in capsys.readouterr().err


def older_hookline_in_public(url: str) -> None:
    """What a hookline before DATABASE_SCHEMA left: its tables in public, unmarked, an order."""
    with connect(url, "public") as db:
        migrate(db, schema="public")
        db.execute("COMMENT ON TABLE schema_migrations IS NULL")
        insert_order(db, "order-kept", 100)


def test_tables_an_older_hookline_left_in_public_are_never_silently_abandoned(
    postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Starting afresh in `hookline` would forget every order and ledger row kept in public."""
    with fresh_database(postgres, None) as url:
        older_hookline_in_public(url)

        # MigrationError: exit 7 (hookline.errors, docs/cli.md).
        assert main(["migrate", "--database-url", url]) == 7
        error = capsys.readouterr().err
        assert "DATABASE_SCHEMA=public" in error
        with psycopg.connect(url) as db:
            assert (
                db.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'hookline'").fetchone()
                is None
            )

        assert main(["migrate", "--database-url", url, "--schema", "public"]) == 0
        assert "Schema public is up to date." in capsys.readouterr().out


@pytest.fixture
def limited_role(postgres: PostgresServer, shop: tuple[str, str]) -> Iterator[str]:
    """A login role that may not create schemas in the shop's database (as on RDS,
    where the application's role is rarely the database owner)."""
    url, _ = shop
    name = postgres.new_name("role")
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(
            sql.SQL("REVOKE CREATE ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(db.info.dbname)
            )
        )
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
        with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_a_role_without_create_on_the_database_migrates_into_a_schema_made_for_it(
    shop: tuple[str, str], limited_role: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, public_before = shop
    as_role = psycopg.conninfo.make_conninfo(url, user=limited_role)

    assert main(["migrate", "--database-url", as_role]) == 1
    assert "InsufficientPrivilege" in capsys.readouterr().err

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(
            sql.SQL("CREATE SCHEMA hookline AUTHORIZATION {}").format(sql.Identifier(limited_role))
        )
    assert main(["migrate", "--database-url", as_role]) == 0, capsys.readouterr().err
    with connect(as_role) as db:
        assert pending(db, discover()) == []
    assert dump_schema(url, "public") == public_before


def test_the_consumers_sessions_resolve_names_in_its_schema_only(shop: tuple[str, str]) -> None:
    """A shop table hookline's schema lacks does not resolve, even though public has it."""
    url, _ = shop
    with connect(url) as db:
        migrate(db)
    database = Database(
        lambda: in_schema(url, "public"), schema="hookline", statement_timeout_ms=4321
    )
    connection = database.connection()
    row: dict[str, Any] | None = connection.execute(
        "SELECT current_setting('search_path') AS search_path,"
        " current_setting('hookline.schema') AS schema,"
        " current_setting('statement_timeout') AS timeout"
    ).fetchone()
    assert row == {"search_path": "hookline", "schema": "hookline", "timeout": "4321ms"}
    with pytest.raises(psycopg.errors.UndefinedTable):
        connection.execute("SELECT * FROM customers")
    assert connection.execute("SELECT count(*) AS n FROM orders").fetchone() == {"n": 0}
    database.discard()


def test_the_documented_move_into_hookline_keeps_every_row(
    postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/operations.md, 'Upgrading to a schema of its own': its SQL, run as written."""
    runbook = (ROOT / "docs" / "operations.md").read_text()
    section = runbook.split("## Upgrading to a schema of its own", 1)[1]
    move = section.split("```sql", 1)[1].split("```", 1)[0]
    with fresh_database(postgres, None) as url:
        older_hookline_in_public(url)
        made_by_migrations = tables(url, "public")

        with psycopg.connect(url, autocommit=True) as db:
            db.execute(move.encode())

        assert tables(url, "public") == set()
        assert tables(url, "hookline") == made_by_migrations
        assert main(["migrate", "--database-url", url]) == 0
        assert "Schema hookline is up to date." in capsys.readouterr().out
        with connect(url) as db:
            assert db.execute("SELECT id FROM orders").fetchall() == [{"id": "order-kept"}]


def test_sessions_are_set_up_after_connecting_never_by_startup_options(
    shop: tuple[str, str],
) -> None:
    """RDS Proxy refuses libpq's startup `options` ("doesn't support command-line
    options"): hookline's own connections send none."""
    url, _ = shop
    with connect(url) as db:
        migrate(db)
    plain = psycopg.conninfo.make_conninfo(url, options="")
    database = Database(lambda: plain, schema="hookline")
    assert not database.connection().info.get_parameters().get("options")
    with connect(plain) as tool:
        assert not tool.info.get_parameters().get("options")
        assert tool.execute("SELECT count(*) AS n FROM orders").fetchone() == {"n": 0}
    database.discard()


def test_a_stack_in_public_by_choice_leaves_room_for_a_second_stack(
    postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """DATABASE_SCHEMA=public (an older hookline's tables kept where they are) and a
    staging stack beside it in its own schema."""
    with fresh_database(postgres, None) as url:
        assert main(["migrate", "--database-url", url, "--schema", "public"]) == 0
        assert main(["migrate", "--database-url", url, "--schema", "hookline_staging"]) == 0
        capsys.readouterr()
        assert "webhook_events" in tables(url, "hookline_staging")
        assert "webhook_events" in tables(url, "public")


def test_a_role_that_may_not_use_the_schema_is_told_which_grant_is_missing(
    shop: tuple[str, str], limited_role: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """set_config accepts any search_path: without these checks the consumer would say
    `relation "webhook_events" does not exist` and migrate `no schema has been selected`."""
    url, _ = shop
    with connect(url) as db:
        migrate(db)
    as_role = psycopg.conninfo.make_conninfo(url, user=limited_role)

    database = Database(lambda: as_role)
    with pytest.raises(
        DatabaseUnavailable, match=f"GRANT USAGE ON SCHEMA hookline TO {limited_role}"
    ):
        database.connection()
    assert main(["migrate", "--database-url", as_role]) == 7
    assert f"GRANT USAGE, CREATE ON SCHEMA hookline TO {limited_role}" in capsys.readouterr().err
    assert main(["migrate", "--database-url", as_role, "--dry-run"]) == 7
    assert f"GRANT USAGE ON SCHEMA hookline TO {limited_role}" in capsys.readouterr().err

    missing = Database(lambda: url, schema="hookline_never_migrated")
    with pytest.raises(DatabaseUnavailable, match="does not exist: deploy"):
        missing.connection()


def test_the_cli_migrates_under_no_statement_timeout_whatever_the_role_s_own(
    postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/deploy.md gives hookline's role a 10 s statement_timeout: a long migration
    run by a person must not stop half way because of it."""
    with fresh_database(postgres, None) as url:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET statement_timeout = '1ms'").format(
                    sql.Identifier(admin.info.dbname)
                )
            )
        assert main(["migrate", "--database-url", url]) == 0, capsys.readouterr().err
        # The check itself must not race the 1 ms limit (a loaded machine's set-up query
        # can take longer): its session starts with none.
        with connect(url, options="-c statement_timeout=0") as db:
            assert pending(db, discover()) == []
