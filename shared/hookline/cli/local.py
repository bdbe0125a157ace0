"""`hookline local`: the whole pipeline on this machine."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from hookline.cli.options import EXAMPLE_SECRETS, Command, fail, project_directory
from hookline.deploy import parameter_overrides
from hookline.errors import EXIT_CONFIGURATION, HooklineError
from hookline.schema import DEFAULT_SCHEMA


def _service_endpoints() -> dict[str, str]:
    """botocore's per-service variables (AWS_ENDPOINT_URL_DYNAMODB, ...) for the
    services the local stack uses, so one of them can be served apart."""
    from hookline.local.stack import LOCAL_SERVICES

    found = {
        service: os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}", "")
        for service in LOCAL_SERVICES
    }
    return {service: url for service, url in found.items() if url}


def _parameters(values: tuple[str, ...], generic_providers: Path | None) -> dict[str, str]:
    # Each value may hold several, as `sam deploy --parameter-overrides "A=1 B=2"`.
    parameters: dict[str, str] = {}
    for value in values:
        parameters.update(parameter_overrides(value))
    if generic_providers is not None:
        # Read as text: the stack checks it as the receiver would, naming what is wrong.
        parameters["GenericProviders"] = generic_providers.read_text()
    return parameters


class SecretsFile(click.Path):
    """A JSON file shaped like the webhook secret: read now, so a typo in it is named
    with its file and line before anything starts."""

    name = "file"

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = Path(str(super().convert(value, param, ctx)))
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            self.fail(
                f"{path} is not JSON: {error.msg} at line {error.lineno}, column {error.colno}",
                param,
                ctx,
            )
        except (OSError, UnicodeDecodeError) as error:
            self.fail(f"cannot read {path}: {error}", param, ctx)
        if not isinstance(document, dict):
            self.fail(
                f'{path} must hold a JSON object: {{"stripe": ["whsec_..."], ...}}', param, ctx
            )
        return path


@click.command(
    "local",
    cls=Command,
    short_help="Run the whole pipeline on this machine (moto, PostgreSQL, the functions).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(min=0),
    default=3000,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--secrets",
    type=SecretsFile(),
    help=f"JSON file shaped like the webhook secret (default: {EXAMPLE_SECRETS}).",
)
@click.option(
    "--database-url",
    metavar="URL",
    help="Default: $DATABASE_URL, else an embedded server kept under .hookline/.",
)
@click.option(
    "--endpoint-url",
    metavar="URL",
    help="An AWS endpoint already running (moto, LocalStack) instead of starting moto "
    "(default: $AWS_ENDPOINT_URL; $AWS_ENDPOINT_URL_DYNAMODB and the like for one service).",
)
@click.option(
    "--schema",
    help="hookline's PostgreSQL schema (default: $DATABASE_SCHEMA, else the template's, "
    f"{DEFAULT_SCHEMA}); the database's other schemas are never touched.",
)
@click.option(
    "--code",
    type=click.Choice(["auto", "build", "source"]),
    default="auto",
    show_default=True,
    help="Run `sam build` output or the source tree (auto: the build when it is "
    "present, current and built for this machine).",
)
@click.option("--build-dir", type=click.Path(path_type=Path), help="Default: .aws-sam/build.")
@click.option(
    "--project",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The folder holding template.yaml.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Default: <project>/.hookline.",
)
@click.option(
    "--parameter-overrides",
    multiple=True,
    metavar="NAME=VALUE",
    help="Template parameters, as for sam deploy (repeat, or several in one quoted value).",
)
@click.option(
    "--generic-providers",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON file of HMAC senders described by configuration (the GenericProviders "
    "parameter; docs/providers.md).",
)
@click.option(
    "--schedule-every",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="Run scheduled functions this often instead of their rate().",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option(
    "--log-format", type=click.Choice(["pretty", "json"]), default="pretty", show_default=True
)
def local_command(
    host: str,
    port: int,
    secrets: Path | None,
    database_url: str | None,
    endpoint_url: str | None,
    schema: str | None,
    code: str,
    build_dir: Path | None,
    project: Path | None,
    data_dir: Path | None,
    parameter_overrides: tuple[str, ...],
    generic_providers: Path | None,
    schedule_every: int | None,
    log_level: str,
    log_format: str,
) -> None:
    """Serve the webhook API like `sam local start-api`, with SQS, DynamoDB and Secrets
    Manager in moto, PostgreSQL from DATABASE_URL or embedded under .hookline/, and
    every function wired as template.yaml wires it. Ctrl-C stops it.
    """
    from hookline.local.console import Console
    from hookline.local.stack import LocalOptions, serve

    console = Console(level=log_level.upper(), json_lines=log_format == "json")
    stop = threading.Event()

    def on_signal(number: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            # A second Ctrl-C: the person wants out now, but not at the cost of a
            # database server left running with nobody to stop it.
            from hookline.local import services

            for pid in services.stop_now():
                console.warning("local", f"PostgreSQL pid {pid} stopped at once (second signal)")
            os._exit(128 + number)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    folder = project_directory(project)
    try:
        options = LocalOptions(
            project=folder,
            secrets_file=(secrets or folder / EXAMPLE_SECRETS).resolve(),
            data_dir=(data_dir or folder / ".hookline").resolve(),
            host=host,
            port=port,
            database_url=database_url or os.environ.get("DATABASE_URL") or None,
            schema=schema if schema is not None else os.environ.get("DATABASE_SCHEMA"),
            endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
            service_endpoints=_service_endpoints(),
            code=code,
            build_dir=build_dir,
            parameters=_parameters(parameter_overrides, generic_providers),
            schedule_every=schedule_every,
        )
        serve(options, console, stop)
    except HooklineError:
        raise
    except ValueError as error:
        fail(str(error), EXIT_CONFIGURATION)
