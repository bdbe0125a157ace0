"""`hookline migrate`: apply db/migrations/*.sql once each, in order, under an advisory lock.

Everything lands in hookline's own schema (DATABASE_SCHEMA, `hookline` by
default), created if missing, with its `schema_migrations` history: the files
are written unqualified and run with the session's search_path set to that
schema alone, so they cannot touch a shop's table of the same name. Each file
runs in its own transaction together with its row in `schema_migrations`, so a
failed migration leaves nothing half-applied. A file whose content changed
after it was applied is an error, not a silent skip: code and schema must not
drift apart.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from hookline.database import Connection, enter_schema
from hookline.errors import MigrationError
from hookline.schema import DEFAULT_SCHEMA, schema_name

# "hookline" in ASCII: the advisory lock every migrator takes before looking.
MIGRATION_LOCK_ID = 0x686F6F6B6C696E65

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def default_directory() -> Path:
    """HOOKLINE_MIGRATIONS, else the copy inside an installed wheel, else the source tree's."""
    configured = os.environ.get("HOOKLINE_MIGRATIONS")
    if configured:
        return Path(configured)
    packaged = Path(__file__).resolve().parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "db" / "migrations"


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or default_directory()
    if not directory.is_dir():
        raise MigrationError(f"no migrations directory at {directory}")
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_snake_case.sql")
        version = match["version"]
        if version in found:
            raise MigrationError(f"two migrations numbered {version}")
        found[version] = Migration(version, match["name"], path.read_text(encoding="utf-8"))
    return [found[version] for version in sorted(found)]


def _schema_exists(connection: Connection, schema: str) -> bool:
    row = connection.execute(
        "SELECT 1 AS found FROM pg_namespace WHERE nspname = %s", (schema,)
    ).fetchone()
    return row is not None


# Marks a `public.schema_migrations` that a stack chose (DATABASE_SCHEMA=public),
# so that tables there are not taken for an older hookline's left behind.
PUBLIC_STACK_MARK = "hookline: DATABASE_SCHEMA=public"


def _refuse_legacy_tables(connection: Connection, schema: str) -> None:
    """A hookline older than DATABASE_SCHEMA kept its tables in `public`: never start
    afresh beside them, as if the ledger and orders were empty."""
    if schema == "public":
        return
    # The catalog only, never a shop's rows: tables only hookline names so, and no
    # stack that runs in public by choice.
    ours = connection.execute(
        "SELECT 1 AS found WHERE to_regclass('public.webhook_events') IS NOT NULL"
        " AND to_regclass('public.parked_events') IS NOT NULL"
        " AND to_regclass('public.reconciliation_runs') IS NOT NULL"
        " AND obj_description(to_regclass('public.schema_migrations'), 'pg_class')"
        " IS DISTINCT FROM %s",
        (PUBLIC_STACK_MARK,),
    ).fetchone()
    if ours is not None:
        raise MigrationError(
            f"hookline's tables are in schema public (made by a hookline before DATABASE_SCHEMA),"
            f" not in {schema}: set DATABASE_SCHEMA=public to keep using them there"
            " (docs/operations.md, 'Upgrading to a schema of its own')"
        )


def _require_rights(connection: Connection, schema: str, *, create: bool) -> None:
    """MigrationError naming the GRANT, rather than PostgreSQL's "no schema has been
    selected to create in" (search_path skips a schema its role may not use)."""
    row = connection.execute(
        "SELECT has_schema_privilege(%s, 'USAGE') AS usage,"
        " has_schema_privilege(%s, 'CREATE') AS create, current_user AS role",
        (schema, schema),
    ).fetchone()
    assert row is not None
    missing = [
        right for right in ("usage", "create") if not row[right] and (create or right == "usage")
    ]
    if missing:
        rights = ", ".join(right.upper() for right in missing)
        raise MigrationError(
            f"role {row['role']} lacks {rights} on schema {schema}:"
            f" GRANT {rights} ON SCHEMA {schema} TO {row['role']}"
            f" (or make it the schema's owner: docs/deploy.md, step 2)"
        )


def _history(connection: Connection, schema: str, *, create: bool) -> dict[str, str]:
    """Applied versions and their checksums; with `create`, make the schema and history first."""
    if not _schema_exists(connection, schema):
        if not create:
            return {}
        _refuse_legacy_tables(connection, schema)
        # Only when missing: a role without CREATE on the database can still
        # migrate into a schema its DBA made for it.
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    else:
        _require_rights(connection, schema, create=create)
    # The CLI's connection is already there; a caller's may not be.
    enter_schema(connection, schema)
    exists = connection.execute(
        "SELECT to_regclass('schema_migrations') IS NOT NULL AS found"
    ).fetchone()
    if exists is None or not exists["found"]:
        if not create:
            return {}
        _refuse_legacy_tables(connection, schema)
        connection.execute(
            """
            CREATE TABLE schema_migrations (
                version    text        PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
    if create and schema == "public":
        _mark_public_stack(connection)
    rows = connection.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {row["version"]: row["checksum"] for row in rows}


def _mark_public_stack(connection: Connection) -> None:
    marked = connection.execute(
        "SELECT obj_description('schema_migrations'::regclass, 'pg_class') = %s AS done",
        (PUBLIC_STACK_MARK,),
    ).fetchone()
    if marked is None or not marked["done"]:
        connection.execute(
            sql.SQL("COMMENT ON TABLE schema_migrations IS {}").format(
                sql.Literal(PUBLIC_STACK_MARK)
            )
        )


def _unapplied(applied: dict[str, str], migrations: list[Migration]) -> list[Migration]:
    known = {migration.version for migration in migrations}
    vanished = sorted(set(applied) - known)
    if vanished:
        raise MigrationError(f"applied migrations missing on disk: {', '.join(vanished)}")
    for migration in migrations:
        checksum = applied.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version}_{migration.name} changed after it was applied;"
                " add a new migration instead of editing an old one"
            )
    return [migration for migration in migrations if migration.version not in applied]


def pending(
    connection: Connection, migrations: list[Migration], schema: str = DEFAULT_SCHEMA
) -> list[Migration]:
    """Migrations not yet applied in `schema` (creates nothing); MigrationError if an
    applied one was edited or is gone."""
    return _unapplied(_history(connection, schema_name(schema), create=False), migrations)


def migrate(
    connection: Connection,
    migrations: list[Migration] | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> list[Migration]:
    """Apply what is pending in `schema`; return what ran. Safe to run concurrently and
    repeatedly. Leaves the session's search_path at `schema`."""
    migrations = discover() if migrations is None else migrations
    schema = schema_name(schema)
    connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
    try:
        todo = _unapplied(_history(connection, schema, create=True), migrations)
        _apply(connection, todo)
        return todo
    finally:
        connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))


def _apply(connection: Connection, todo: list[Migration]) -> None:
    """Each migration in its own transaction with its history row; a failure names its file
    in a note (the driver's error itself is left as it is)."""
    for migration in todo:
        try:
            with connection.transaction():
                # bytes: a file's text is not a LiteralString, and holds several statements.
                connection.execute(migration.sql.encode())
                connection.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        except Exception as error:
            error.add_note(f"in migration {migration.version}_{migration.name}")
            raise


@dataclass(frozen=True)
class Standing:
    """A schema against migrations that may be older than it.

    `migrations`: those applied by this run (or, read-only, that would be). `ahead`: those
    the schema has and these files do not, as NNNN_name: a newer hookline's. That is
    what CloudFormation's rollback of a deploy looks like (the previous code meets the
    schema the new code migrated), and why migrations are additive (docs/deploy.md).
    """

    migrations: list[Migration]
    ahead: list[str]


def _split_newer(
    connection: Connection, applied: dict[str, str], migrations: list[Migration]
) -> tuple[dict[str, str], list[str]]:
    """The history of `migrations`' own versions, and the names of the newer ones."""
    known = {migration.version for migration in migrations}
    newer = sorted(set(applied) - known)
    if not newer:
        return applied, []
    rows = connection.execute(
        "SELECT version, name FROM schema_migrations WHERE version = ANY(%s) ORDER BY version",
        (newer,),
    ).fetchall()
    ours = {version: checksum for version, checksum in applied.items() if version in known}
    return ours, [f"{row['version']}_{row['name']}" for row in rows]


def pending_allowing_newer(
    connection: Connection, migrations: list[Migration], schema: str = DEFAULT_SCHEMA
) -> Standing:
    """`pending`, but a schema ahead of `migrations` is reported, not an error."""
    applied = _history(connection, schema_name(schema), create=False)
    ours, ahead = _split_newer(connection, applied, migrations)
    return Standing(_unapplied(ours, migrations), ahead)


def migrate_allowing_newer(
    connection: Connection, migrations: list[Migration], schema: str = DEFAULT_SCHEMA
) -> Standing:
    """`migrate`, but a schema ahead of `migrations` is reported, not an error: what is
    pending among them is still applied, and an edited one still fails."""
    schema = schema_name(schema)
    connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
    try:
        ours, ahead = _split_newer(
            connection, _history(connection, schema, create=True), migrations
        )
        todo = _unapplied(ours, migrations)
        _apply(connection, todo)
        return Standing(todo, ahead)
    finally:
        connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
