"""What every command shares: the options naming a stack (declared once), where the
local stack is, how errors become one line and an exit code, and how answers print.

Options go anywhere: `hookline parked --stack prod show 5` and `hookline parked
show 5 --stack prod` are the same request. Each shared option is declared on a
group and on its commands with a callback that records it in the context's
`meta`, which every context of one command line shares; the command reads the
recorded values, whichever level they were given at.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from hookline.errors import (
    EXIT_CONFIGURATION,
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ConfigurationError,
    HooklineError,
    error_class,
)
from hookline.simulate.events import UnknownEventType

if TYPE_CHECKING:
    from hookline import remote

# Where template.yaml is when hookline runs from its own checkout (as hookline.template says).
CHECKOUT = Path(__file__).resolve().parents[3]

F = TypeVar("F", bound=Callable[..., Any])

_META_KEY = "hookline.shared"
DEFAULT_CONFIG_ENV = "default"
EXAMPLE_SECRETS = Path("config") / "local-secrets.example.json"


class Failure(click.ClickException):
    """A failure already worded for the operator, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        # The command it came from (`hookline parked show`), set where it is raised.
        self.where: str | None = None


def fail(message: str, exit_code: int = EXIT_FAILED) -> NoReturn:
    raise Failure(message, exit_code)


def translate(error: BaseException) -> Failure | None:
    """The one line and exit code for an error a user can cause; None for a bug."""
    # Imported here: `hookline --help` need not load boto3 and psycopg.
    import psycopg
    from botocore.exceptions import BotoCoreError, ClientError

    from hookline import remote
    from hookline.database import describe

    if isinstance(error, HooklineError):
        return Failure(str(error), error.exit_code)
    if isinstance(error, UnknownEventType):
        return Failure(str(error), EXIT_USAGE)
    if isinstance(error, (BotoCoreError, ClientError)):
        converted = remote.aws_failure(error, "AWS")
        return Failure(str(converted), converted.exit_code)
    if isinstance(error, psycopg.OperationalError):
        return Failure(describe(error), EXIT_UNAVAILABLE)
    if isinstance(error, psycopg.Error):
        return Failure(describe(error), EXIT_FAILED)
    if isinstance(error, BrokenPipeError):
        return None  # main() ends quietly
    if isinstance(error, OutputFailed):
        return Failure(str(error), EXIT_FAILED)
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return Failure(f"{error.strerror or error}{where}", EXIT_CONFIGURATION)
    return None


def _invoke(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:
    try:
        return invoke(ctx)
    except Failure as given:
        given.where = given.where or ctx.command_path
        raise
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except Exception as error:
        failure = translate(error)
        if failure is None:
            raise
        failure.where = ctx.command_path
        raise failure from error


class Command(click.Command):
    """A command whose expected failures end as one line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        return _invoke(super().invoke, ctx)


class Group(click.Group):
    """Commands listed in the order they are added (the order of the docs), not sorted."""

    command_class = Command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        return _invoke(super().invoke, ctx)


Group.group_class = Group


@dataclass
class Shared:
    """The shared options as given, wherever on the command line."""

    stack: str | None = None
    profile: str | None = None
    region: str | None = None
    config_env: str | None = None
    json: bool = False
    data_dir: Path | None = None
    # `parked --limit N` and `parked list --limit N` alike.
    limit: int | None = None


def shared(ctx: click.Context | None = None) -> Shared:
    ctx = ctx or click.get_current_context()
    found = ctx.meta.get(_META_KEY)
    if not isinstance(found, Shared):
        found = Shared()
        ctx.meta[_META_KEY] = found
    return found


def _record(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is None or value is False or param.name is None:
        return
    options = shared(ctx)
    before = getattr(options, param.name)
    if before not in (None, False) and before != value:
        raise click.BadParameter(f"given twice, as {before} and as {value}", ctx, param)
    setattr(options, param.name, value)


def _option(*names: str, **settings: Any) -> Callable[[F], F]:
    return click.option(*names, expose_value=False, callback=_record, **settings)


def json_option(function: F) -> F:
    return _option("--json", is_flag=True, help="Machine-readable output (docs/cli.md).")(function)


def data_dir_option(function: F) -> F:
    return _option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="The local stack's data folder (default: .hookline).",
    )(function)


def limit_option(default: int, maximum: int, what: str) -> Callable[[F], F]:
    """--limit, recorded like the shared options: a group and its command share it."""
    return _option(
        "--limit",
        type=click.IntRange(1, maximum),
        help=f"At most this many {what}, newest first (default {default}, at most {maximum}).",
    )


def stack_options(function: F) -> F:
    """--stack, --profile, --region, --config-env: which deployed stack, if any."""
    for decorate in reversed(
        (
            _option(
                "--stack",
                metavar="NAME",
                help="A deployed stack (default: the local stack; see --config-env).",
            ),
            _option("--profile", help="With a deployed stack: the AWS profile."),
            _option("--region", help="With a deployed stack: its region."),
            _option(
                "--config-env",
                metavar="ENV",
                help="Act on the stack samconfig.toml's [ENV] names (stack_name, region, profile).",
            ),
        )
    ):
        function = decorate(function)
    return function


def remote_options(function: F) -> F:
    """Every option a command that reads or steers a stack shares."""
    return stack_options(json_option(data_dir_option(function)))


# Where things are ---------------------------------------------------------------


def project_directory(given: Path | None = None) -> Path:
    """Where template.yaml is: the given folder, else the current one, else this checkout."""
    for candidate in (given, Path.cwd(), CHECKOUT):
        if candidate is not None and (candidate / "template.yaml").exists():
            return candidate.resolve()
    raise ConfigurationError("no template.yaml here: run from the project or pass --project")


def local_state(data_dir: Path | None) -> dict[str, Any] | None:
    from hookline.local.stack import read_state

    try:
        directory = data_dir or project_directory() / ".hookline"
    except ConfigurationError:
        return None
    return read_state(directory)


def running_local_state(data_dir: Path | None) -> dict[str, Any]:
    state = local_state(data_dir)
    if state is None:
        # The start command names the same folder, so the command retried finds it;
        # `make run` works only beside the project's Makefile.
        folder = f" --data-dir {shlex.quote(str(data_dir))}" if data_dir is not None else ""
        make = ""
        if _in_project():
            make = f' or `make run ARGS="{folder.strip()}"`' if folder else " or `make run`"
        where = f" in {data_dir}" if data_dir is not None else ""
        raise ConfigurationError(
            f"no local stack is running{where} (start one with "
            f"`{command_hint('hookline')} local{folder}`{make}), "
            "or name a deployed one with --stack NAME"
        )
    return state


def _in_project() -> bool:
    here = Path.cwd()
    return (here / "Makefile").is_file() and (here / "template.yaml").is_file()


def command_hint(tool: str) -> str:
    """How to type `tool` (hookline, sam) so that it runs as printed in a fresh clone:
    bare when the shell finds this environment's copy, else its path (.venv/bin/sam)."""
    if tool == "hookline":
        from hookline.local.hints import hookline_command

        return hookline_command()
    beside = Path(sys.executable).parent / tool
    found = shutil.which(tool)
    if not beside.exists() or (found is not None and Path(found).samefile(beside)):
        return tool
    relative = os.path.relpath(beside, Path.cwd())
    return relative if len(relative) < len(str(beside)) else str(beside)


# Which stack --------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """A deployed stack, as the options name it."""

    name: str
    profile: str | None
    region: str | None

    def connect(self) -> remote.DeployedStack:
        from hookline import remote

        return remote.stack(self.name, profile=self.profile, region=self.region)


def _samconfig(config_env: str) -> tuple[str, str | None, str | None]:
    from hookline.deploy import read_settings

    path = project_directory() / "samconfig.toml"
    if not path.exists():
        raise ConfigurationError(f"--config-env {config_env}: there is no {path}")
    settings = read_settings(config_env, path)
    return settings.stack_name, settings.profile, settings.region


def deployed_target(ctx: click.Context | None = None) -> Deployed | None:
    """The deployed stack the options name, or None for the local stack.

    The rule (docs/cli.md): --stack NAME names one; else --config-env ENV names
    samconfig.toml's [ENV] stack_name; else it is the local stack, even though
    samconfig.toml's [default] names a stack: a deployed stack is only ever
    reached when the command line says so. With either, --profile and --region
    default to that samconfig environment's.
    """
    options = shared(ctx)
    if options.stack is None and options.config_env is None:
        if options.profile or options.region:
            given = "--profile" if options.profile else "--region"
            raise click.UsageError(
                f"{given} goes with a deployed stack: add --stack NAME or --config-env ENV"
            )
        return None
    name, profile, region = options.stack, None, None
    if options.config_env is not None:
        configured, profile, region = _samconfig(options.config_env)
        name = name or configured
    assert name is not None  # --stack, or samconfig's (read_settings requires one)
    return Deployed(name, options.profile or profile, options.region or region)


def reconciler(ctx: click.Context | None = None) -> remote.Invoke:
    """The reconciler's invoke: the deployed stack's, or the running local stack's."""
    from hookline import remote

    target = deployed_target(ctx)
    if target is not None:
        invoke = target.connect().invoker()
    else:
        invoke = remote.local(running_local_state(shared(ctx).data_dir))

    def answered(request: Mapping[str, Any]) -> dict[str, Any]:
        answer = invoke(request)
        # The reconciler names the action (`event: event_id: expected ...`); the CLI's
        # own prefix (`hookline events show: `) already does.
        error, action = answer.get("error"), request.get("action")
        if not answer.get("ok") and isinstance(error, str) and error.startswith(f"{action}: "):
            answer = {**answer, "error": error.removeprefix(f"{action}: ")}
        return answer

    return answered


def again(*words: str, ctx: click.Context | None = None) -> str:
    """A hookline command line to type next, naming the same stack as this one."""
    from hookline.local.hints import command

    options = shared(ctx)
    given: list[str] = []
    for flag, value in (
        ("--stack", options.stack),
        ("--config-env", options.config_env),
        ("--profile", options.profile),
        ("--region", options.region),
        ("--data-dir", options.data_dir),
    ):
        if value is not None:
            given += [flag, str(value)]
    return printable(command(*words, *given))


# What to check when Ctrl-C stops the CLI while a remote action runs (main() prints it).
_interrupted_hint: list[str] = []


def steering(check: str, ctx: click.Context | None = None) -> None:
    """An action that changes things is about to be sent: if the operator interrupts
    the wait, the action may complete anyway; `check` (a command line) finds out."""
    ctx = ctx or click.get_current_context()
    _interrupted_hint[:] = [
        f"{ctx.command_path}: interrupted: the action may still complete; check with `{check}`"
    ]


def interrupted_hint() -> str | None:
    return _interrupted_hint[0] if _interrupted_hint else None


def forget_interrupted_hint() -> None:
    _interrupted_hint.clear()


# Output ---------------------------------------------------------------------------


def failure(answer: Mapping[str, Any]) -> Failure:
    """A failed answer as one line with its class's exit code."""
    kind = str(answer.get("kind") or "")
    exit_code = error_class(kind).exit_code if kind else EXIT_FAILED
    message = str(answer.get("error") or json.dumps(answer, default=str))
    return Failure(message.splitlines()[0] if message else "failed", exit_code)


def checked(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    """The answer, unless it says it failed: then one line with its class's exit code."""
    if answer.get("ok"):
        return answer
    raise failure(answer)


class OutputFailed(OSError):
    """Writing the output failed (a full disk, `> /dev/full`): the command failed, exit 1;
    not a configuration problem, as other OSErrors (a file it could not read) are."""


def out(text: str, *, nl: bool = True) -> None:
    """click.echo to stdout; a failure to write is OutputFailed (a broken pipe stays
    BrokenPipeError, which ends quietly)."""
    try:
        click.echo(text, nl=nl)
    except BrokenPipeError:
        raise
    except OSError as error:
        raise OutputFailed(f"cannot write the output: {error.strerror or error}") from error


def echo_json(document: Any) -> None:
    out(json.dumps(document, indent=2, default=str))


def emit(answer: Mapping[str, Any], text: Callable[[Mapping[str, Any]], str]) -> None:
    """Print a reconciler's answer: as JSON with --json, else as `text` renders it."""
    answer = checked(answer)
    if shared().json:
        echo_json(answer)
    else:
        out(text(answer))


# C0 and C1 controls (an escape sequence would restyle or rewrite the operator's
# terminal) and the bidirectional overrides (which reorder what is shown).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character written as an escape (\\x1b, \\u202e)."""
    return _UNPRINTABLE.sub(_escape, text)


def cell(value: Any) -> str:
    """A value as shown to a person: control characters escaped (an id may carry any)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return printable(str(value))


def when(value: Any) -> str:
    """An ISO time, shortened for a table (seconds, no offset: the reconciler answers UTC)."""
    text = cell(value)
    return text[:19].replace("T", " ") if len(text) >= 19 else text


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns as wide as their widest cell; the last one left ragged; controls escaped."""
    shown = [[printable(str(cell)) for cell in row] for row in [headers, *rows]]
    widths = [max(len(cell) for cell in column) for column in zip(*shown, strict=True)]
    lines = []
    for row in shown:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def environment(name: str) -> str | None:
    return os.environ.get(name) or None
