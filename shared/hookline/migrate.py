"""`hookline migrate`: apply db/migrations/*.sql once each, in order, under an advisory lock.

Each file runs in its own transaction together with its row in
`schema_migrations`, so a failed migration leaves nothing half-applied. A file
whose content changed after it was applied is an error, not a silent skip:
code and schema must not drift apart.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from hookline.database import Connection
from hookline.errors import MigrationError

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


def _ensure_history(connection: Connection) -> dict[str, str]:
    connection.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    text        PRIMARY KEY,
            name       text        NOT NULL,
            checksum   text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    rows = connection.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {row["version"]: row["checksum"] for row in rows}


def pending(connection: Connection, migrations: list[Migration]) -> list[Migration]:
    """Migrations not yet applied; MigrationError if an applied one was edited or is gone."""
    applied = _ensure_history(connection)
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


def migrate(connection: Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is pending; return what ran. Safe to run concurrently and repeatedly."""
    migrations = discover() if migrations is None else migrations
    connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
    try:
        todo = pending(connection, migrations)
        for migration in todo:
            with connection.transaction():
                # bytes: a file's text is not a LiteralString, and holds several statements.
                connection.execute(migration.sql.encode())
                connection.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        return todo
    finally:
        connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
