"""The `hookline` command line. Subcommands arrive with the features they drive."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from hookline.database import describe
from hookline.errors import MigrationError
from hookline.migrate import default_directory, discover, migrate, pending


def _migrate(args: argparse.Namespace) -> int:
    url = args.database_url or os.environ.get("DATABASE_URL")
    if not url:
        print("hookline migrate: set DATABASE_URL or pass --database-url", file=sys.stderr)
        return 2
    try:
        migrations = discover(args.directory)
        with psycopg.connect(
            url, autocommit=True, connect_timeout=10, row_factory=dict_row
        ) as connection:
            run = pending if args.dry_run else migrate
            todo = run(connection, migrations)
    except MigrationError as error:
        print(f"hookline migrate: {error}", file=sys.stderr)
        return 1
    except psycopg.Error as error:
        print(f"hookline migrate: {describe(error)}", file=sys.stderr)
        return 1
    names = [f"{m.version}_{m.name}" for m in todo]
    if args.json:
        print(json.dumps({"pending" if args.dry_run else "applied": names}))
    elif not names:
        print("Database is up to date.")
    else:
        verb = "Would apply" if args.dry_run else "Applied"
        print("\n".join(f"{verb} {name}" for name in names))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="hookline", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    migrate_command = commands.add_parser(
        "migrate", help="apply pending database migrations (safe to run repeatedly)"
    )
    migrate_command.add_argument("--database-url", help="default: $DATABASE_URL")
    migrate_command.add_argument(
        "--directory", type=Path, default=None, help=f"default: {default_directory()}"
    )
    migrate_command.add_argument("--dry-run", action="store_true", help="list, apply nothing")
    migrate_command.add_argument("--json", action="store_true", help="machine-readable output")
    migrate_command.set_defaults(run=_migrate)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
