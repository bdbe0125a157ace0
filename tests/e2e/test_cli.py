"""The `hookline` command line as a person types it: the real console script in a
subprocess, against one local stack (and, for --stack, a deployed stack whose
CloudFormation is moto's and whose Lambda API is that local stack's).

One test per defect issue 13 lists where the CLI is at fault.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from hookline.local.services import moto_server
from hookline.simulate.events import Subject, event_types, lifecycle
from hookline.simulate.signing import PROVIDERS
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.support.local_stack import ROOT, LocalStackProcess
from tests.support.postgres import PostgresServer, fresh_database, insert_order

pytestmark = pytest.mark.e2e

HOOKLINE = Path(sys.executable).parent / "hookline"
DEPLOYED = "hookline-prod"
DASHBOARD = "https://console.aws.amazon.com/cloudwatch/home#dashboards:name=hookline-prod"
STATUSES = ["received", "applied", "stale", "ignored", "orphaned", "parked", "resolved", "failed"]


def hookline(
    *arguments: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """The console script `make install` puts in .venv/bin, as typed in a shell."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(HOOKLINE), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=environment,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The single stderr line a failing command prints; nothing on stdout, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"hookline {command}: "), lines[0]
    return lines[0]


# --- one local stack, one ledger with every status, one deployed stack ---------------


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> Iterator[str]:
    with fresh_database(postgres, None) as url:
        yield url


@pytest.fixture(scope="module")
def stack(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackProcess]:
    started = LocalStackProcess.start(
        tmp_path_factory.mktemp("cli") / ".hookline",
        ["--database-url", database, "--code", "source"],
    )
    yield started
    assert started.stop() == 0, started.log_tail()


@pytest.fixture(scope="module")
def ledger(stack: LocalStackProcess, database: str) -> dict[str, Any]:
    """A ledger row in every status, one minute apart (the first the oldest), and an
    open parking for the `parked` one: events the CLI reads, written as the
    consumer would have written them."""
    rng = random.Random(13)
    now = datetime.now(UTC).replace(microsecond=0)
    ids: dict[str, str] = {}
    with psycopg.connect(database, autocommit=True, row_factory=dict_row) as db:
        insert_order(db, "cli-order-1", 2000)
        for index, status in enumerate(STATUSES):
            subject = Subject.new(rng, order_id="cli-order-1")
            (event,) = lifecycle("stripe", ["payment_intent.succeeded"], subject, rng)
            body = json.loads(event.body)
            received = now - timedelta(minutes=len(STATUSES) - index)
            db.execute(
                "INSERT INTO webhook_events (provider, event_id, event_type, object_id,"
                " occurred_at, received_at, processed_at, status, attempts, last_error,"
                " order_id, payload, raw_body) VALUES ('stripe', %s, %s, %s, %s, %s, %s, %s,"
                " %s, %s, %s, %s, %s)",
                (
                    event.event_id,
                    event.event_type,
                    body["data"]["object"]["id"],
                    received,
                    received,
                    received,
                    status,
                    3 if status == "parked" else 1,
                    "ValueError: no currency" if status in ("parked", "failed") else None,
                    "cli-order-1" if status == "orphaned" else None,
                    Jsonb(body),
                    event.body.decode(),
                ),
            )
            if status == "parked":
                db.execute(
                    "INSERT INTO parked_events (provider, event_id, reason, last_error, payload,"
                    " event_type, object_id, occurred_at, received_at, headers, raw_body)"
                    " VALUES ('stripe', %s, 'permanent_failure', 'ValueError: no currency', %s,"
                    " %s, %s, %s, %s, '{}', %s)",
                    (
                        event.event_id,
                        Jsonb(body),
                        event.event_type,
                        body["data"]["object"]["id"],
                        received,
                        received,
                        event.body.decode(),
                    ),
                )
            ids[status] = event.event_id
    return ids


@pytest.fixture(scope="module")
def deployed(stack: LocalStackProcess) -> Iterator[dict[str, str]]:
    """A deployed stack as --stack reaches it: CloudFormation (moto server) names the
    reconciler, which the Lambda API answers (the local stack's own, through
    botocore's per-service endpoint variables). The environment to run with."""
    with moto_server() as endpoint:
        environment = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_CLOUDFORMATION": endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": stack.state["lambda_url"],
        }
        template = {
            "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {
                "ReconcilerFunctionName": {"Value": "ReconcilerFunction"},
                "DashboardUrl": {"Value": DASHBOARD},
            },
        }
        boto3.client(
            "cloudformation",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_stack(StackName=DEPLOYED, TemplateBody=json.dumps(template))
        yield environment


# --- help, version, completion -----------------------------------------------------------


def test_help_is_written_for_people_and_send_lists_the_event_types() -> None:
    root = hookline("--help")
    assert root.returncode == 0, root.stderr
    assert root.stdout.startswith("Usage: hookline [OPTIONS] COMMAND [ARGS]...")
    assert "argument parsing here" not in root.stdout  # the old module docstring
    for command in ("migrate", "local", "send", "event", "status", "events", "parked", "replay"):
        assert f"\n  {command} " in root.stdout
    send = hookline("send", "--help")
    assert send.returncode == 0, send.stderr
    listed = " ".join(send.stdout.split("Event types")[1].split())
    for provider in PROVIDERS:
        assert f" {provider} " in listed
        for kind in event_types(provider):
            assert kind in listed
    assert hookline("--version").stdout.startswith("hookline, version ")


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "_hookline_completion"), ("zsh", "#compdef hookline"), ("fish", "complete")],
)
def test_the_completion_script_generates(shell: str, marker: str) -> None:
    result = hookline(env={"_HOOKLINE_COMPLETE": f"{shell}_source"})
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout


def test_completion_completes_subcommands() -> None:
    result = hookline(
        env={"_HOOKLINE_COMPLETE": "bash_complete", "COMP_WORDS": "hookline par", "COMP_CWORD": "1"}
    )
    assert "parked" in result.stdout


# --- errors a user can cause: one line, the table's exit code ---------------------------


def test_send_with_no_stack_running_says_what_to_start(tmp_path: Path) -> None:
    result = hookline(
        "send", "stripe", "payment_intent.succeeded", "--data-dir", str(tmp_path), "--url",
        "http://127.0.0.1:9",
    )  # fmt: skip
    assert result.returncode == 5
    line = one_line_error(result, "send")
    assert "nothing answers at http://127.0.0.1:9: start the local stack with `" in line
    assert "NewConnectionError" not in line


def test_a_bad_amount_names_the_option(tmp_path: Path) -> None:
    result = hookline("send", "stripe", "payment_intent.succeeded", "--amount", "abc")
    assert result.returncode == 2
    line = one_line_error(result, "send")
    assert "'--amount': 'abc' is not a whole number of minor units" in line


def test_a_secrets_file_that_is_not_json_is_named_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "stripe": ["whsec_x",]\n}\n')
    result = hookline("local", "--secrets", str(bad), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    line = one_line_error(result, "local")
    assert f"{bad} is not JSON" in line
    assert "line 2" in line


def test_an_unknown_command_and_a_missing_argument_are_usage_errors() -> None:
    assert hookline("nosuch").returncode == 2
    missing = hookline("parked", "show")
    assert missing.returncode == 2
    assert "Missing argument 'ID'" in one_line_error(missing, "parked show")


def test_region_without_a_stack_is_refused(tmp_path: Path) -> None:
    result = hookline("status", "--region", "eu-west-1", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--region goes with a deployed stack" in one_line_error(result, "status")


def test_status_with_no_local_stack_says_how_to_start_one(tmp_path: Path) -> None:
    result = hookline("status", "--data-dir", str(tmp_path))
    assert result.returncode == 3
    line = one_line_error(result, "status")
    # The start it suggests names the same folder, so the command retried finds it.
    assert f"no local stack is running in {tmp_path} (start one with `" in line
    assert f'local --data-dir {tmp_path}` or `make run ARGS="--data-dir {tmp_path}"`)' in line
    # Away from the checkout `make run` does not work: only the command that does.
    away = hookline("status", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert away.returncode == 3
    line = one_line_error(away, "status")
    assert f"(start one with `{HOOKLINE} local --data-dir {tmp_path}`), or name a" in line


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("events list", "--since", "999999d"),
        ("events list", "--until", "9999-12-31T23:00-05:00"),
        ("replay", "--since", "0001-01-01T00:00+01:00"),
    ],
)
def test_a_time_outside_the_calendar_is_a_usage_error(
    command: str, option: str, value: str, tmp_path: Path
) -> None:
    result = hookline(*command.split(), "--provider", "stripe", option, value,
                      "--data-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 2
    line = one_line_error(result, command)
    assert f"'{option}': '{value}' is out of range: give a time between 0001-01-01" in line


def test_an_output_that_cannot_be_written_exits_1(tmp_path: Path) -> None:
    """`> /dev/full`: writing failed, which is no configuration problem (exit 3 once)."""
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [str(HOOKLINE), "event", "stripe", "payment_intent.succeeded", "-o", "-",
             "--data-dir", str(tmp_path)],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert one_line_error(result, "event") == (
        "hookline event: cannot write the output: No space left on device"
    )


@pytest.mark.parametrize("since", ["garbage", "yesterday"])
def test_replay_refuses_a_time_it_cannot_read_before_sending_anything(
    stack: LocalStackProcess, since: str, tmp_path: Path
) -> None:
    """The reconciler once cast `garbage` in SQL (a traceback) and read `yesterday` as
    no bound at all. Refused here, by the CLI, before it even looks for a stack: the
    same answer where no stack runs at all."""
    for data_dir in (stack.data_dir, tmp_path):
        result = hookline(
            "replay", "--provider", "stripe", "--since", since, "--data-dir", str(data_dir)
        )
        assert result.returncode == 2
        line = one_line_error(result, "replay")
        assert f"Invalid value for '--since': '{since}' is not a time: give a date" in line
        assert "30m, 2h, 1d" in line


def test_status_into_a_closed_pipe_ends_quietly(stack: LocalStackProcess) -> None:
    """`hookline status | head -1`: the reader has gone before status writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # deterministic: every write meets a pipe with no reader
    try:
        result = subprocess.run(
            [str(HOOKLINE), "status", "--data-dir", str(stack.data_dir)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 1  # as Python's docs on SIGPIPE advise, and click does


# --- events ---------------------------------------------------------------------------------


def test_events_list_has_a_header_and_the_newest_first(
    stack: LocalStackProcess, ledger: dict[str, str]
) -> None:
    result = hookline("events", "list", "--provider", "stripe", "--data-dir", str(stack.data_dir))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "RECEIVED", "(UTC)", "PROVIDER", "EVENT", "ID", "TYPE", "STATUS", "ATTEMPTS", "ORDER",
    ]  # fmt: skip
    listed = [row.split()[3] for row in rows]
    assert listed == [ledger[status] for status in reversed(STATUSES)]


def test_events_list_json_has_the_documented_shape(
    stack: LocalStackProcess, ledger: dict[str, str]
) -> None:
    result = hookline(
        "events", "list", "--json", "--status", "parked", "--data-dir", str(stack.data_dir)
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) >= {"ok", "events", "limit", "more"}
    assert (answer["ok"], answer["limit"], answer["more"]) == (True, 50, False)
    (event,) = answer["events"]
    assert set(event) >= {
        "provider", "event_id", "event_type", "status", "object_id", "order_id",
        "occurred_at", "received_at", "processed_at", "attempts", "last_error",
    }  # fmt: skip
    assert (event["event_id"], event["status"], event["attempts"]) == (
        ledger["parked"],
        "parked",
        3,
    )

    # The shared options go on the group too (`events --json list` was "No such option").
    limited = hookline("events", "--json", "--data-dir", str(stack.data_dir), "list",
                       "--limit", "2", "--since", "1d")  # fmt: skip
    assert limited.returncode == 0, limited.stderr
    page = json.loads(limited.stdout)
    assert (len(page["events"]), page["more"]) == (2, True)


def test_events_show_reads_in_sections_and_as_json(
    stack: LocalStackProcess, ledger: dict[str, str]
) -> None:
    shown = hookline("events", "show", ledger["parked"], "--data-dir", str(stack.data_dir))
    assert shown.returncode == 0, shown.stderr
    for section in ("ledger", "attempts: 3", "last error: ValueError: no currency", "payment",
                    "order", "parked #", "replays: "):  # fmt: skip
        assert section in shown.stdout
    as_json = hookline(
        "events", "show", ledger["parked"], "--json", "--payload", "--data-dir", str(stack.data_dir)
    )
    event = json.loads(as_json.stdout)["event"]
    assert set(event) >= {"provider", "event_id", "status", "attempts", "last_error", "payment",
                          "order", "parked", "replays", "payload"}  # fmt: skip
    assert event["parked"][0]["reason"] == "permanent_failure"
    missing = hookline("events", "show", "evt_nosuch", "--data-dir", str(stack.data_dir))
    assert missing.returncode == 4
    assert "evt_nosuch" in one_line_error(missing, "events show")


def test_ids_are_shown_escaped_and_the_reconciler_s_errors_with_one_prefix(
    stack: LocalStackProcess,
) -> None:
    """An id is whatever a sender put there: an escape sequence in it must not reach
    the operator's terminal, in an error or anywhere else."""
    red = "evt_\x1b[31mred"
    missing = hookline("events", "show", red, "--data-dir", str(stack.data_dir))
    assert missing.returncode == 4
    line = one_line_error(missing, "events show")
    assert "\x1b" not in line
    assert "evt_\\x1b[31mred" in line
    too_long = hookline("events", "show", "e" * 1000, "--data-dir", str(stack.data_dir))
    assert too_long.returncode == 2
    assert one_line_error(too_long, "events show").startswith(
        "hookline events show: event_id: expected"
    )


# --- parked ---------------------------------------------------------------------------------


def test_parked_lists_with_a_header_and_takes_the_event_id(
    stack: LocalStackProcess, ledger: dict[str, str]
) -> None:
    listed = hookline("parked", "--data-dir", str(stack.data_dir))
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["ID", "PARKED", "AT"]
    assert any(ledger["parked"] in row for row in rows)
    parked_id = next(row.split()[0] for row in rows if ledger["parked"] in row)
    limited = hookline("parked", "--limit", "1", "list", "--data-dir", str(stack.data_dir))
    assert limited.returncode == 0, limited.stderr
    assert limited.stdout.splitlines() == [header, rows[0]]  # one open parking: no "more" line

    by_event = hookline("parked", "show", ledger["parked"], "--data-dir", str(stack.data_dir))
    by_number = hookline("parked", "show", parked_id, "--data-dir", str(stack.data_dir))
    assert by_event.returncode == 0, by_event.stderr
    assert by_event.stdout == by_number.stdout
    assert "permanent_failure" in by_event.stdout


def test_the_stack_options_act_on_the_deployed_stack_before_or_after_the_subcommand(
    stack: LocalStackProcess, ledger: dict[str, str], deployed: dict[str, str], tmp_path: Path
) -> None:
    """`parked --stack prod show 5` lost --stack (and --json) to the group: it read the
    local stack. Here no local stack is where --data-dir points, so only the
    deployed stack can answer."""
    nowhere = ["--data-dir", str(tmp_path)]
    event_id = ledger["parked"]
    before = hookline("parked", "--stack", DEPLOYED, "--json", "show", event_id, *nowhere,
                      env=deployed)  # fmt: skip
    after = hookline("parked", "show", event_id, "--stack", DEPLOYED, "--json", *nowhere,
                     env=deployed)  # fmt: skip
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["parked"]["event_id"] == event_id
    assert before.stdout == after.stdout

    status = hookline("status", "--stack", DEPLOYED, *nowhere, env=deployed)
    assert status.returncode == 0, status.stderr
    assert f"dashboard: {DASHBOARD}" in status.stdout
    refused = hookline("status", "--stack", DEPLOYED, "--database-url", "postgresql://x/y",
                       env=deployed)  # fmt: skip
    assert refused.returncode == 2
    assert "--database-url goes with the local stack" in one_line_error(refused, "status")
    missing = hookline("parked", "--stack", "no-such-stack", *nowhere, env=deployed)
    assert missing.returncode == 4
    assert "cannot read stack no-such-stack" in one_line_error(missing, "parked")


def test_resolve_by_event_id_with_replay_then_a_second_resolve_is_refused(
    stack: LocalStackProcess, ledger: dict[str, str]
) -> None:
    # Runs after the read-only tests above (pytest keeps file order): it changes the ledger.
    event_id = ledger["parked"]
    resolved = hookline("parked", "resolve", event_id, "--note", "currency fixed by hand",
                        "--replay", "--data-dir", str(stack.data_dir))  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr
    parked_id = json.loads(
        hookline("parked", "show", event_id, "--json", "--data-dir", str(stack.data_dir)).stdout
    )["parked"]["id"]
    assert resolved.stdout == (
        f"resolved #{parked_id} (stripe {event_id}); replayed as"
        f" {event_id}:replay:parked-{parked_id}\n"
    )
    again = hookline("parked", "resolve", f"#{parked_id}", "--note", "again",
                     "--data-dir", str(stack.data_dir))  # fmt: skip
    assert again.returncode == 6
    assert "already resolved" in one_line_error(again, "parked resolve")
    shown = json.loads(
        hookline("events", "show", event_id, "--json", "--data-dir", str(stack.data_dir)).stdout
    )["event"]
    assert shown["status"] == "resolved"
    assert shown["parked"][0]["resolution"] == "currency fixed by hand"
