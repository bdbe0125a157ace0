"""`hookline migrate`: apply pending migrations here, or through a deployed stack's
MigrationsFunction (from inside the database's VPC)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from hookline.cli.options import (
    Command,
    checked,
    deployed_target,
    fail,
    json_option,
    out,
    shared,
    stack_options,
)
from hookline.errors import EXIT_CONFIGURATION, ConfigurationError
from hookline.schema import DEFAULT_SCHEMA, schema_name


def _schema_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return schema_name(value)
    except ConfigurationError as error:
        raise click.BadParameter(str(error), ctx, param) from None


@click.command(
    "migrate",
    cls=Command,
    short_help="Apply pending database migrations (safe to run repeatedly).",
)
@click.option("--database-url", metavar="URL", help="Default: $DATABASE_URL.")
@click.option(
    "--schema",
    callback=_schema_option,
    help="The schema holding hookline's tables "
    f"(default: $DATABASE_SCHEMA, else {DEFAULT_SCHEMA}).",
)
@click.option(
    "--directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The migrations (default: $HOOKLINE_MIGRATIONS, else the package's db/migrations).",
)
@click.option("--dry-run", is_flag=True, help="List what would be applied; apply nothing.")
@json_option
@stack_options
def migrate_command(
    database_url: str | None, schema: str | None, directory: Path | None, dry_run: bool
) -> None:
    """Apply the pending migrations in db/migrations, each in its own transaction.

    With --stack (or --config-env), the stack's MigrationsFunction runs them from
    inside the database's VPC (needs lambda:InvokeFunction and
    cloudformation:DescribeStacks); the stack's own database, schema and
    migrations are used.
    """
    target = deployed_target()
    if target is not None:
        from hookline.remote import MIGRATIONS_OUTPUT

        given = [
            name
            for name, value in (
                ("--database-url", database_url),
                ("--schema", schema),
                ("--directory", directory),
            )
            if value is not None
        ]
        if given:
            raise click.UsageError(
                f"{', '.join(given)}: with a deployed stack, its own database, schema and "
                "migrations are used"
            )
        invoke = target.connect().invoker(MIGRATIONS_OUTPUT, "the migrations function")
        _print_deployed(checked(invoke({"action": "migrate", "dry_run": dry_run})), dry_run)
        return
    from hookline.database import connect
    from hookline.migrate import discover, migrate, pending

    url = database_url or os.environ.get("DATABASE_URL")
    if not url:
        fail("set DATABASE_URL or pass --database-url", EXIT_CONFIGURATION)
    chosen = schema_name(
        schema if schema is not None else os.environ.get("DATABASE_SCHEMA") or DEFAULT_SCHEMA
    )
    migrations = discover(directory)
    # No statement timeout: a person runs it and watches (a role's own, such as
    # docs/deploy.md's 10 s for hookline's, would stop a long migration half way).
    with connect(url, chosen, statement_timeout_ms=0, connect_timeout=10) as connection:
        todo = (pending if dry_run else migrate)(connection, migrations, chosen)
    _print_migrated(chosen, [f"{m.version}_{m.name}" for m in todo], dry_run)


def _print_migrated(schema: str, names: list[str], dry_run: bool) -> None:
    if shared().json:
        out(json.dumps({"schema": schema, "pending" if dry_run else "applied": names}))
    elif not names:
        out(f"Schema {schema} is up to date.")
    else:
        verb = "Would apply" if dry_run else "Applied"
        out("\n".join(f"{verb} {name} in schema {schema}" for name in names))


def _print_deployed(answer: Any, dry_run: bool) -> None:
    if shared().json:
        out(json.dumps(dict(answer)))
        return
    if answer.get("ahead"):
        click.echo(
            f"hookline migrate: schema {answer.get('schema')} has migrations the deployed code"
            f" does not: {', '.join(answer['ahead'])}",
            err=True,
        )
    names = answer.get("pending" if dry_run else "applied", [])
    _print_migrated(str(answer.get("schema")), list(names), dry_run)
