"""The `hookline` command line, on click: one module per command group, the options
every remote command shares declared once (cli/options.py), times parsed before
anything is sent (cli/times.py). docs/cli.md documents every command."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from hookline.cli.events import events_group
from hookline.cli.local import local_command
from hookline.cli.migrate import migrate_command
from hookline.cli.operate import redrive_command, replay_command
from hookline.cli.options import (
    Failure,
    Group,
    forget_interrupted_hint,
    interrupted_hint,
    printable,
)
from hookline.cli.parked import parked_group
from hookline.cli.send import event_command, send_command
from hookline.cli.status import status_command
from hookline.errors import EXIT_FAILED, EXIT_INTERRUPTED

HELP = """\
hookline receives webhooks from payment and commerce providers, applies each one
exactly once to the shop's PostgreSQL database, and tells operators when anything
needs a human.

Every command works against the local stack (`hookline local`) or, with --stack
NAME or --config-env ENV, against a deployed stack. docs/cli.md has the details:
the shared options, the exit codes and the --json shapes.
"""


@click.group(
    "hookline", cls=Group, help=HELP, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="hookline", prog_name="hookline")
def hookline() -> None:
    pass


for command in (
    migrate_command,
    local_command,
    send_command,
    event_command,
    status_command,
    events_group,
    parked_group,
    redrive_command,
    replay_command,
):
    hookline.add_command(command)


def _one_line(text: str) -> str:
    """One line, its control characters escaped (an id may carry any)."""
    return printable(" ".join(part.strip() for part in text.splitlines() if part.strip()))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit code (docs/cli.md's table)."""
    forget_interrupted_hint()
    try:
        result = hookline.main(
            args=list(argv) if argv is not None else None,
            prog_name="hookline",
            standalone_mode=False,
        )
    except click.UsageError as error:
        where = printable(error.ctx.command_path if error.ctx is not None else "hookline")
        click.echo(f"{where}: {_one_line(error.format_message())}", err=True)
        return error.exit_code
    except Failure as error:
        click.echo(f"{error.where or 'hookline'}: {_one_line(error.format_message())}", err=True)
        return error.exit_code
    except click.ClickException as error:
        click.echo(f"hookline: {_one_line(error.format_message())}", err=True)
        return error.exit_code
    except click.Abort:
        # Ctrl-C (click turns KeyboardInterrupt into Abort, after a newline on stderr).
        # Waiting for an action that changes things: the stack may still complete it.
        hint = interrupted_hint()
        if hint is not None:
            click.echo(hint, err=True)
        return EXIT_INTERRUPTED
    except OSError as error:
        # click's own output (--help, --version into a full disk); a command's OSErrors
        # were already made one line (options.translate). A broken pipe ends as below.
        click.echo(f"hookline: cannot write the output: {error.strerror or error}", err=True)
        return EXIT_FAILED
    except SystemExit as exit_:
        # Shell completion ends this way; so does click's own end to a broken pipe
        # (`hookline status | head`), quietly, having silenced stdout's last flush.
        return exit_.code if isinstance(exit_.code, int) else EXIT_FAILED
    return result if isinstance(result, int) else 0


__all__ = ["hookline", "main"]

if __name__ == "__main__":
    sys.exit(main())
