"""MigrationsFunction: the pending migrations on every deploy, and `hookline migrate --stack`.

It runs inside the database's VPC, as the consumer does, so a private RDS needs no
path from the deployer's machine.

On deploy: template.yaml's custom resource `Migrations` names the hookline layer's
version and the schema, so CloudFormation sends Create on the first deploy and Update
on every deploy that ships new code or migrations. Both apply what is pending (migrate's
advisory lock serializes concurrent runs) before the consumer and its event source
are created or updated (ConsumerFunction DependsOn the resource). A failure answers
FAILED with its reason in one line, so the deploy fails and rolls back. Delete answers
SUCCESS and changes nothing: removing the stack never drops data.

In a rollback CloudFormation sends Update with the previous properties, so the
previous code meets a schema the new code migrated. Migrations are additive (expand,
then contract in a later release), so that code runs against the newer schema: the
versions it does not know are logged and answered in `Ahead`, not a failure, else
the rollback itself would fail and leave the stack stuck. Its own pending migrations
still apply, and an edited one still fails.

On a direct invoke, `{"action": "migrate"}` (with `"dry_run": true`: list only) answers
`{"ok": true, "schema", "applied" (or "pending"), "ahead"}` or `{"ok": false, "error"}`.

crhelper answers CloudFormation: an HTTPS PUT to the request's presigned S3 URL (from a
VPC that needs a NAT gateway or an S3 gateway endpoint), and FAILED on its own just
before the function would time out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import psycopg
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import (
    GetParameterError,
    TransformParameterError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from crhelper import CfnResource
from psycopg.rows import dict_row

from hookline.aws import CLIENT_CONFIG
from hookline.database import describe, enter_schema, well_formed
from hookline.database_setup import database_conninfo
from hookline.errors import HooklineError, MigrationError, ServiceUnavailable
from hookline.metric_names import Metric
from hookline.migrate import (
    Standing,
    discover,
    migrate_allowing_newer,
    pending_allowing_newer,
)
from hookline.observability import count, logger
from hookline.settings import DatabaseSettings

PHYSICAL_ID_PREFIX = "hookline-migrations-"
APPLICATION_NAME = "hookline-migrations"
FAILED_METRIC = Metric.MIGRATIONS_FAILED
CONNECT_TIMEOUT_SECONDS = 10  # as `hookline migrate`'s
# Left of the invocation after a statement is cancelled, to answer with its reason
# rather than crhelper's bare "Execution timed out".
ANSWER_MARGIN_MS = 10_000
# CloudFormation shows the reason in its events; crhelper keeps only the tail of a longer one.
MAX_REASON = 250
# CloudFormation refuses an answer over 4096 bytes: a first deploy applies every migration.
MAX_LISTED = 1_000


class MigrationsFailed(HooklineError):
    """Migrations could not run, or one failed. The message is one line and names no secret."""


def physical_id(schema: str) -> str:
    """One per schema: an Update keeps it, so CloudFormation never "replaces" (deletes) it."""
    return PHYSICAL_ID_PREFIX + schema


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


def _reason(error: BaseException) -> str:
    if isinstance(error, psycopg.Error):
        where = [note for note in getattr(error, "__notes__", ()) if note.startswith("in ")]
        return _one_line(" ".join([describe(error), *where]))
    return _one_line(str(error))


@dataclass(frozen=True)
class Migrator:
    """Runs the migrations shipped with this code against the configured database."""

    conninfo: Callable[[], str]
    schema: str
    directory: Path | None = None  # None: migrate.default_directory() (HOOKLINE_MIGRATIONS, ...)

    def run(self, *, dry_run: bool, remaining_ms: int) -> Standing:
        statement_timeout_ms = max(1_000, remaining_ms - ANSWER_MARGIN_MS)
        try:
            migrations = discover(self.directory)
            with psycopg.connect(
                well_formed(self.conninfo()),
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name=APPLICATION_NAME,
            ) as connection:
                # Waiting for another migrator's advisory lock counts too.
                enter_schema(connection, self.schema, statement_timeout_ms)
                run = pending_allowing_newer if dry_run else migrate_allowing_newer
                return run(connection, migrations, self.schema)
        except (
            MigrationError,
            ServiceUnavailable,  # the database secret: unreadable, or not RDS-shaped
            GetParameterError,
            TransformParameterError,
            psycopg.Error,
        ) as error:
            raise MigrationsFailed(_reason(error)) from error


def _names(standing: Standing) -> list[str]:
    return [f"{m.version}_{m.name}" for m in standing.migrations]


def listed(names: list[str], limit: int = MAX_LISTED) -> str:
    """`names` comma-separated for an answer's Data, the last ones counted if too long."""
    text = ",".join(names)
    if len(text) <= limit:
        return text
    shown: list[str] = []
    for name in names:
        rest = f",… {len(names) - len(shown) - 1} more"
        if len(",".join([*shown, name])) + len(rest) > limit:
            break
        shown.append(name)
    return ",".join(shown) + f",… {len(names) - len(shown)} more"


def _is_custom_resource_request(event: Mapping[str, Any]) -> bool:
    return "RequestType" in event and "ResponseURL" in event


class MigrationsFunction:
    """One per Lambda container: crhelper keeps a request's state on itself."""

    def __init__(self, migrator: Callable[[], Migrator]) -> None:
        # Built on first use, inside the request: a bad environment is then answered
        # (FAILED, or ok false) instead of leaving CloudFormation waiting.
        self._migrator = migrator
        self._resource = CfnResource(
            # crhelper sets the root logger's level to this on every request: keep it.
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            # What hookline.observability caps them at.
            boto_level="WARNING",
            # It would wait for logs before a Delete answer; our log group is retained.
            sleep_on_delete=0,
        )
        self._resource.create(self._create_or_update)
        self._resource.update(self._create_or_update)
        self._resource.delete(self._delete)

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any] | None:
        if _is_custom_resource_request(event):
            # crhelper answers through ResponseURL; the invocation's own answer is unused.
            self._resource(event, context)
            return None
        if event.get("action") == "migrate":
            return self._direct(event, context)
        return {"ok": False, "error": f"unknown action {event.get('action')!r}; use 'migrate'"}

    def _create_or_update(self, event: Mapping[str, Any], context: LambdaContext) -> str:
        kind = event["RequestType"]
        try:
            migrator = self._migrator()
            standing = migrator.run(
                dry_run=False, remaining_ms=context.get_remaining_time_in_millis()
            )
        except (MigrationsFailed, ServiceUnavailable) as error:
            count(FAILED_METRIC)
            logger.error("migrations failed", extra={"request": kind, "reason": str(error)})
            # crhelper answers FAILED with the message as the reason.
            raise
        applied = _names(standing)
        self._resource.Data.update(
            {
                "Schema": migrator.schema,
                "Applied": listed(applied),
                "Ahead": listed(standing.ahead),
            }
        )
        if standing.ahead:
            logger.warning(
                "schema is ahead of this code (a rollback, or an older deploy): kept as is",
                extra={"request": kind, "schema": migrator.schema, "ahead": standing.ahead},
            )
        logger.info(
            "migrations applied",
            extra={"request": kind, "schema": migrator.schema, "applied": applied},
        )
        return physical_id(migrator.schema)

    def _delete(self, event: Mapping[str, Any], context: LambdaContext) -> None:
        # Never drops data; None keeps the PhysicalResourceId CloudFormation sent.
        logger.info("stack or resource deleted: hookline's schema is kept as it is")

    def _direct(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        dry_run = event.get("dry_run", False)
        if not isinstance(dry_run, bool):
            return {"ok": False, "error": "dry_run must be true or false"}
        try:
            migrator = self._migrator()
            standing = migrator.run(
                dry_run=dry_run, remaining_ms=context.get_remaining_time_in_millis()
            )
        except (MigrationsFailed, ServiceUnavailable) as error:
            if not dry_run:
                count(FAILED_METRIC)
            logger.error("migrations failed", extra={"dry_run": dry_run, "reason": str(error)})
            return {"ok": False, "error": str(error)}
        names = _names(standing)
        logger.info(
            "migrations listed" if dry_run else "migrations applied",
            extra={"schema": migrator.schema, "migrations": names, "ahead": standing.ahead},
        )
        return {
            "ok": True,
            "schema": migrator.schema,
            "pending" if dry_run else "applied": names,
            "ahead": standing.ahead,
        }


def build_migrator(settings: DatabaseSettings) -> Migrator:
    secrets = SecretsProvider(boto3_client=boto3.client("secretsmanager", config=CLIENT_CONFIG))
    return Migrator(database_conninfo(settings, secrets), settings.database_schema)


def _crhelper_logs_like_hookline() -> None:
    """crhelper's own lines (its answer's status, its errors) through hookline's JSON handler,
    at INFO: at DEBUG it logs whole requests, the presigned ResponseURL included."""
    crhelper_logger = logging.getLogger("crhelper")
    crhelper_logger.setLevel(logging.INFO)
    crhelper_logger.handlers = [logger.registered_handler]
    crhelper_logger.propagate = False


@cache
def migrations_function() -> MigrationsFunction:
    """Built on first use and kept for the container's life (clear the cache to rebuild)."""
    _crhelper_logs_like_hookline()
    return MigrationsFunction(cache(lambda: build_migrator(DatabaseSettings.from_env())))
