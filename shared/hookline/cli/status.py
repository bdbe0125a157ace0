"""`hookline status`: is anything waiting, failing or needing a human?"""

from __future__ import annotations

import click

from hookline.cli.options import (
    Command,
    checked,
    deployed_target,
    echo_json,
    out,
    printable,
    remote_options,
    running_local_state,
    shared,
)
from hookline.schema import DEFAULT_SCHEMA

DASHBOARD_OUTPUT = "DashboardUrl"  # hookline.remote.DASHBOARD_OUTPUT, without importing boto3


@click.command(
    "status",
    cls=Command,
    short_help="Queue depths, ledger counts, parked events, the last reconciler run.",
)
@click.option(
    "--database-url",
    metavar="URL",
    help="The local stack only: read this database instead of the stack's.",
)
@remote_options
def status_command(database_url: str | None) -> None:
    """Queue depths, ledger and order counts, open parked events and the last
    reconciler run, of the local stack or of a deployed one (--stack), whose
    reconciler reads them from inside its VPC; a deployed stack's dashboard URL too."""
    from hookline import status

    target = deployed_target()
    if target is not None:
        if database_url is not None:
            raise click.UsageError(
                "--database-url goes with the local stack: a deployed stack's status is read "
                "by its own reconciler, from its own database"
            )
        stack = target.connect()
        answer = checked(stack.invoker()({"action": "status"}))
        report = dict(answer.get("status") or {})
        report["dashboard_url"] = stack.outputs.get(DASHBOARD_OUTPUT)
    else:
        from hookline.local.stack import aws_clients

        state = running_local_state(shared().data_dir)
        clients = aws_clients(state["endpoint_url"], state["region"], ("sqs",))
        report = status.collect(
            status.Target(
                state["stack_name"],
                state["queues"],
                clients["sqs"],
                database_url or state["database_url"],
                state.get("database_schema", DEFAULT_SCHEMA),
            )
        )
    if shared().json:
        echo_json(report)
        return
    text = status.render(report)
    if report.get("dashboard_url"):
        text += f"\ndashboard: {report['dashboard_url']}"
    elif target is not None:
        text += f"\ndashboard: stack {target.name} has no {DASHBOARD_OUTPUT} output (deploy again)"
    # Event ids in the parked list are a sender's text: controls escaped, line by line.
    out("\n".join(printable(line) for line in text.split("\n")))
