"""Option parsing: the shared options wherever they are given, which stack they name
(the samconfig rule), requests built from the options, and answers' exit codes.

The stack is replaced at hookline.remote's boundary (what a Lambda invoke would
answer); the defects themselves are tested through the console script in
tests/e2e/test_cli.py.
"""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hookline import remote
from hookline.cli import main
from hookline.cli import options as cli_options

SAMCONFIG = """\
version = 0.1
[default.global.parameters]
stack_name = "hookline-dev"
[prod.global.parameters]
stack_name = "hookline-prod"
region = "eu-west-1"
profile = "ops"
"""


@dataclass
class Reached:
    """Every stack the CLI reached, and what it asked."""

    stacks: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=lambda: {"ok": True, "parked": []})


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Reached:
    seen = Reached()

    def invoker_for(where: str) -> remote.Invoke:
        def invoke(payload: Mapping[str, Any]) -> dict[str, Any]:
            seen.requests.append((where, dict(payload)))
            return seen.answer

        return invoke

    class FakeStack:
        def __init__(self, name: str) -> None:
            self.name = name
            self.outputs = {"DashboardUrl": "https://dashboard"}

        def invoker(self, output: str = "", label: str = "") -> remote.Invoke:
            return invoker_for(self.name)

    def fake_stack(name: str, *, profile: str | None = None, region: str | None = None) -> Any:
        seen.stacks.append((name, profile, region))
        return FakeStack(name)

    monkeypatch.setattr(remote, "stack", fake_stack)
    monkeypatch.setattr(remote, "local", lambda state: invoker_for("local"))
    monkeypatch.setattr(cli_options, "local_state", lambda data_dir: {"lambda_url": "x"})
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    (tmp_path / "samconfig.toml").write_text(SAMCONFIG)
    monkeypatch.chdir(tmp_path)
    return seen


@pytest.mark.parametrize(
    "argv",
    [
        ["parked", "--stack", "prod", "show", "5"],
        ["parked", "show", "5", "--stack", "prod"],
        ["parked", "show", "--stack", "prod", "5"],
    ],
)
def test_stack_is_kept_wherever_it_is_given(reached: Reached, argv: list[str]) -> None:
    reached.answer = {"ok": True, "parked": {"id": 5}}
    assert main(argv) == 0
    assert reached.stacks == [("prod", None, None)]
    assert reached.requests == [("prod", {"action": "parked", "id": "5"})]


def test_json_given_to_the_group_is_kept(
    reached: Reached, capsys: pytest.CaptureFixture[str]
) -> None:
    reached.answer = {"ok": True, "parked": {"id": 5, "event_id": "evt_1"}}
    assert main(["parked", "--json", "show", "evt_1"]) == 0
    assert capsys.readouterr().out.startswith("{\n")
    assert reached.requests == [("local", {"action": "parked", "id": "evt_1"})]


def test_an_option_given_twice_with_different_values_is_refused(
    reached: Reached, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["parked", "--stack", "a", "show", "5", "--stack", "b"]) == 2
    assert "given twice, as a and as b" in capsys.readouterr().err
    assert reached.requests == []


def test_bare_commands_mean_the_local_stack_whatever_samconfig_names(reached: Reached) -> None:
    assert main(["parked"]) == 0
    assert reached.stacks == []
    assert reached.requests == [("local", {"action": "parked"})]


def test_config_env_names_samconfig_s_stack_region_and_profile(reached: Reached) -> None:
    assert main(["parked", "--config-env", "prod"]) == 0
    assert main(["parked", "--config-env", "prod", "--region", "us-east-2"]) == 0
    assert main(["parked", "--config-env", "default"]) == 0
    assert main(["parked", "--config-env", "prod", "--stack", "other"]) == 0
    assert reached.stacks == [
        ("hookline-prod", "ops", "eu-west-1"),
        ("hookline-prod", "ops", "us-east-2"),
        ("hookline-dev", None, None),
        ("other", "ops", "eu-west-1"),
    ]


def test_a_config_env_samconfig_lacks_is_a_configuration_error(
    reached: Reached, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--config-env", "staging"]) == 3
    assert "samconfig.toml has no [staging] environment" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--region", "--profile"])
def test_region_and_profile_need_a_deployed_stack(
    reached: Reached, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    assert main(["events", "list", option, "x"]) == 2
    error = capsys.readouterr().err
    assert error == (
        f"hookline events list: {option} goes with a deployed stack: add --stack NAME or"
        " --config-env ENV\n"
    )
    assert reached.requests == []


def test_events_list_sends_the_filters_as_the_contract_names_them(reached: Reached) -> None:
    reached.answer = {"ok": True, "events": [], "limit": 10, "more": False}
    argv = ["events", "list", "--provider", "stripe", "--type", "charge.refunded"]
    argv += ["--status", "parked", "--order", "o-1", "--since", "2026-01-01", "--limit", "10"]
    assert main(argv) == 0
    assert reached.requests == [
        (
            "local",
            {
                "action": "events",
                "provider": "stripe",
                "type": "charge.refunded",
                "status": "parked",
                "order": "o-1",
                "since": "2026-01-01T00:00:00+00:00",
                "limit": 10,
            },
        )
    ]


def test_resolve_sends_the_note_and_replay(reached: Reached) -> None:
    reached.answer = {"ok": True, "resolved": 7}
    assert main(["parked", "resolve", "evt_1", "--note", "refunded by hand", "--replay"]) == 0
    assert reached.requests == [
        ("local", {"action": "resolve", "id": "evt_1", "resolution": "refunded by hand",
                   "replay": True}),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "exit_code"),
    [("InvalidRequest", 2), ("NotFound", 4), ("OperatorRefused", 6), ("DatabaseUnavailable", 5),
     ("ConfigurationError", 3), ("SomethingNew", 1), (None, 1)],
)  # fmt: skip
def test_a_failed_answer_exits_with_its_class_s_code(
    reached: Reached, capsys: pytest.CaptureFixture[str], kind: str | None, exit_code: int
) -> None:
    reached.answer = {"ok": False, "error": "no event evt_9\nsecond line"}
    if kind is not None:
        reached.answer["kind"] = kind
    assert main(["events", "show", "evt_9"]) == exit_code
    assert capsys.readouterr().err == "hookline events show: no event evt_9\n"


def test_status_of_a_deployed_stack_prints_its_dashboard_and_refuses_a_database_url(
    reached: Reached, capsys: pytest.CaptureFixture[str]
) -> None:
    reached.answer = {
        "ok": True,
        "status": {"stack": "prod", "queues": {}, "database": {"error": "unreachable"}},
    }
    assert main(["status", "--stack", "prod"]) == 0
    assert "dashboard: https://dashboard" in capsys.readouterr().out
    assert main(["status", "--stack", "prod", "--database-url", "postgresql://x"]) == 2
    assert "--database-url goes with the local stack" in capsys.readouterr().err


def test_replay_needs_an_event_or_a_provider(
    reached: Reached, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay"]) == 2
    assert "name an EVENT_ID, or a range with --provider" in capsys.readouterr().err
    assert reached.requests == []


def test_ctrl_c_exits_130_without_a_traceback(
    reached: Reached, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(state: Any) -> remote.Invoke:
        def invoke(payload: Mapping[str, Any]) -> dict[str, Any]:
            raise KeyboardInterrupt

        return invoke

    monkeypatch.setattr(remote, "local", interrupted)
    assert main(["events", "list"]) == 130
    assert capsys.readouterr().err == "\n"  # a read: nothing to check


@pytest.mark.parametrize(
    ("argv", "check"),
    [
        (["redrive"], "status"),
        (["parked", "resolve", "#3", "--note", "n", "--stack", "prod"],
         "parked show '#3' --stack prod"),
        (["replay", "evt_1", "--provider", "stripe"], "events show evt_1 --provider stripe"),
        (["replay", "--provider", "stripe", "--since", "1d"],
         "events list --provider stripe --since 20"),
    ],
)  # fmt: skip
def test_ctrl_c_during_an_action_says_it_may_still_complete_and_how_to_check(
    reached: Reached,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    check: str,
) -> None:
    def interrupted(payload: Mapping[str, Any]) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(remote, "local", lambda state: interrupted)
    monkeypatch.setattr(remote, "stack", lambda name, **_: _Interrupted())
    assert main(argv) == 130
    _newline, line = capsys.readouterr().err.splitlines()
    command = "hookline " + " ".join(argv[: 2 if argv[0] == "parked" else 1])
    assert line.startswith(f"{command}: interrupted: the action may still complete; check with `")
    assert f"hookline {check}" in line


class _Interrupted:
    def __init__(self) -> None:
        self.outputs: dict[str, str] = {}

    def invoker(self, output: str = "", label: str = "") -> remote.Invoke:
        def invoke(payload: Mapping[str, Any]) -> dict[str, Any]:
            raise KeyboardInterrupt

        return invoke


# --- where the shared options go -------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["events", "--json", "list"],
        ["events", "list", "--json"],
        ["events", "--data-dir", "elsewhere", "list", "--json"],
        ["events", "--stack", "prod", "--json", "list"],
    ],
)
def test_the_events_group_takes_the_shared_options(
    reached: Reached, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    reached.answer = {"ok": True, "events": [], "limit": 50, "more": False}
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("{\n")
    assert reached.requests == [
        ("prod" if "--stack" in argv else "local", {"action": "events", "limit": 50})
    ]


def test_data_dir_given_to_the_events_group_names_the_local_stack(
    reached: Reached, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Path | None] = []

    def local_state(data_dir: Path | None) -> dict[str, Any]:
        asked.append(data_dir)
        return {"lambda_url": "x"}

    monkeypatch.setattr(cli_options, "local_state", local_state)
    reached.answer = {"ok": True, "event": {}}
    assert main(["events", "--data-dir", "elsewhere", "show", "evt_1"]) == 0
    assert asked == [Path("elsewhere")]


# --- limits ---------------------------------------------------------------------------------


def test_the_cli_s_limit_is_the_reconciler_s() -> None:
    import click
    from hookline.cli.events import events_group
    from hookline.errors import InvalidRequest
    from hookline.inspection import DEFAULT_LIMIT, MAX_LIMIT
    from hookline.reconcile import actions

    listing = events_group.commands["list"]
    (limit,) = [param for param in listing.params if param.name == "limit"]
    assert isinstance(limit.type, click.IntRange)
    assert (limit.type.max, limit.default) == (MAX_LIMIT, DEFAULT_LIMIT)
    # What the CLI offers, the reconciler accepts, and no more.
    assert actions.EventsRequest.parse("events", {"limit": MAX_LIMIT}).limit == MAX_LIMIT
    with pytest.raises(InvalidRequest):
        actions.EventsRequest.parse("events", {"limit": MAX_LIMIT + 1})


@pytest.mark.parametrize(
    "argv",
    [["parked", "--limit", "7"], ["parked", "list", "--limit", "7"],
     ["parked", "--limit", "7", "list"]],
)  # fmt: skip
def test_parked_takes_a_limit_on_the_group_or_on_list(reached: Reached, argv: list[str]) -> None:
    assert main(argv) == 0
    assert reached.requests == [("local", {"action": "parked", "limit": 7})]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["parked", "--limit", "501"], "'--limit': 501 is not in the range 1<=x<=500"),
        (["events", "list", "--limit", "501"], "'--limit': 501 is not in the range 1<=x<=500"),
        (["parked", "--limit", "5", "show", "3"], "--limit goes with the list"),
    ],
)
def test_a_limit_out_of_bounds_or_out_of_place_is_refused(
    reached: Reached, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert reached.requests == []


def _parked_rows(count: int) -> list[dict[str, Any]]:
    return [
        {"id": n, "parked_at": "2026-03-01T00:00:00+00:00", "provider": "stripe",
         "event_id": f"evt_{n}", "event_type": "charge.refunded", "reason": "permanent_failure"}
        for n in range(count, 0, -1)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "last_line"),
    [
        ({"more": True}, "more open parkings than these 2: --limit 500"),
        ({"more": True, "open": 12}, "10 more open parkings: --limit 12"),
        ({"more": False}, "1   2026-03-01 00:00:00  stripe    evt_1     charge.refunded"),
    ],
)
def test_parked_says_when_the_limit_hides_open_parkings(
    reached: Reached, capsys: pytest.CaptureFixture[str], answer: dict[str, Any], last_line: str
) -> None:
    reached.answer = {"ok": True, "parked": _parked_rows(2), "limit": 2, **answer}
    assert main(["parked", "--limit", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(last_line)


# --- what the answers print ------------------------------------------------------------------


def test_resolve_prints_the_number_the_event_and_the_replay(
    reached: Reached, capsys: pytest.CaptureFixture[str]
) -> None:
    reached.answer = {"ok": True, "resolved": 1, "provider": "stripe", "event_id": "evt_1",
                      "replay": {"ok": True, "replayed": ["evt_1:replay:parked-1"]}}  # fmt: skip
    assert main(["parked", "resolve", "evt_1", "--note", "n", "--replay"]) == 0
    assert capsys.readouterr().out == (
        "resolved #1 (stripe evt_1); replayed as evt_1:replay:parked-1\n"
    )
    del reached.answer["replay"]
    assert main(["parked", "resolve", "#1", "--note", "n"]) == 0
    assert capsys.readouterr().out == "resolved #1 (stripe evt_1)\n"


def test_the_reconciler_s_action_prefix_is_not_printed_twice(
    reached: Reached, capsys: pytest.CaptureFixture[str]
) -> None:
    reached.answer = {"ok": False, "kind": "InvalidRequest",
                      "error": "event: event_id: expected an event id, got 'x'"}  # fmt: skip
    assert main(["events", "show", "x"]) == 2
    assert capsys.readouterr().err == (
        "hookline events show: event_id: expected an event id, got 'x'\n"
    )


def test_control_characters_in_ids_are_escaped_in_tables_and_errors(
    reached: Reached, capsys: pytest.CaptureFixture[str]
) -> None:
    red = "evt_\x1b[31mred\u202e"
    reached.answer = {"ok": True, "parked": [{"id": 1, "provider": "stripe", "event_id": red}]}
    assert main(["parked"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert "evt_\\x1b[31mred\\u202e" in out
    reached.answer = {"ok": False, "kind": "NotFound", "error": f"no event {red}"}
    assert main(["events", "show", red]) == 4
    assert capsys.readouterr().err == "hookline events show: no event evt_\\x1b[31mred\\u202e\n"


def test_a_replay_the_deadline_stopped_says_what_was_sent_and_how_to_go_on(
    reached: Reached, capsys: pytest.CaptureFixture[str]
) -> None:
    reached.answer = {"ok": True, "nonce": "n1", "more": True,
                      "replayed": ["evt_1:replay:n1", "evt_2:replay:n1"]}  # fmt: skip
    assert main(["replay", "--provider", "stripe", "--since", "1d"]) == 1
    output = capsys.readouterr()
    assert output.out == "replayed 2 (nonce n1)\n  evt_1:replay:n1\n  evt_2:replay:n1\n"
    (line,) = output.err.splitlines()
    assert line.startswith("hookline replay: the reconciler's time ran out: 2 sent, the rest")
    assert "--since at the last one's time (`" in line
    assert "hookline events show evt_2`" in line

    assert main(["replay", "--provider", "stripe", "--json"]) == 1
    output = capsys.readouterr()
    assert json.loads(output.out) == reached.answer
    assert "2 sent, the rest of the range was not" in output.err
    # The reconciler's count of the rest and the last sent one's position: the command.
    reached.answer |= {"remaining": 3, "resume_since": "2026-03-01T09:14:03+00:00",
                       "resume_after": "evt_2"}  # fmt: skip
    assert main(["replay", "--provider", "stripe", "--type", "charge.refunded",
                 "--until", "2026-03-02", "--stack", "prod"]) == 1  # fmt: skip
    (line,) = capsys.readouterr().err.splitlines()
    assert "2 sent, the other 3 were not; send them with `" in line
    assert line.endswith(
        "hookline replay --provider stripe --type"
        " charge.refunded --since 2026-03-01T09:14:03+00:00 --after-id evt_2"
        " --until 2026-03-02T00:00:00+00:00 --stack prod`"
    )
    # That command sends the position on, as the reconciler's `after`.
    reached.answer = {"ok": True, "nonce": "n2", "replayed": [], "more": False}
    assert main(["replay", "--provider", "stripe", "--since", "2026-03-01T09:14:03+00:00",
                 "--after-id", "evt_2"]) == 0  # fmt: skip
    assert reached.requests[-1][1]["after"] == "evt_2"
    assert main(["replay", "--provider", "stripe", "--after-id", "evt_2"]) == 2


def test_a_replay_that_failed_partway_lists_what_went_out(
    reached: Reached, capsys: pytest.CaptureFixture[str]
) -> None:
    reached.answer = {"ok": False, "kind": "ServiceUnavailable", "error": "SQS: throttled",
                      "nonce": "n1", "replayed": ["evt_1:replay:n1"]}  # fmt: skip
    assert main(["replay", "--provider", "stripe"]) == 5
    output = capsys.readouterr()
    assert output.out == "sent before the failure (nonce n1):\n  evt_1:replay:n1\n"
    assert output.err.startswith(
        "hookline replay: SQS: throttled (1 replays were sent before it, listed above; the rest"
    )
    assert main(["replay", "--provider", "stripe", "--json"]) == 5
    output = capsys.readouterr()
    assert json.loads(output.out)["replayed"] == ["evt_1:replay:n1"]
    assert "(1 replays were sent before it, in the JSON above;" in output.err
    reached.answer |= {"remaining": 4, "resume_since": "2026-03-01T09:14:03+00:00"}
    assert main(["replay", "--provider", "stripe"]) == 5
    error = capsys.readouterr().err
    assert "listed above; the other 4 were not; send them with `" in error
    assert error.endswith("hookline replay --provider stripe --since 2026-03-01T09:14:03+00:00`)\n")

    reached.answer = {"ok": False, "kind": "NotFound", "error": "no ledger row", "replayed": []}
    assert main(["replay", "evt_9"]) == 4
    output = capsys.readouterr()
    assert (output.out, output.err) == ("", "hookline replay: no ledger row\n")


def test_an_output_that_cannot_be_written_is_a_failure_not_configuration(
    reached: Reached, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Full:
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", Full())
    assert main(["parked"]) == 1
    assert capsys.readouterr().err == (
        "hookline parked: cannot write the output: No space left on device\n"
    )
    assert main(["--help"]) == 1  # click's own output
    assert capsys.readouterr().err == "hookline: cannot write the output: No space left on device\n"


def test_no_local_stack_suggests_make_run_only_beside_the_makefile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["status", "--data-dir", str(tmp_path)]) == 3
    error = capsys.readouterr().err
    # The start it suggests names the same folder: run as printed, the retry finds it.
    assert f"local --data-dir {tmp_path}`), or name a deployed one" in error
    assert "make run" not in error
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    (tmp_path / "Makefile").write_text("run:\n")
    assert main(["status", "--data-dir", str(tmp_path)]) == 3
    assert f'local --data-dir {tmp_path}` or `make run ARGS="--data-dir {tmp_path}"`), or name' in (
        capsys.readouterr().err
    )
    assert main(["status"]) == 3
    assert "local` or `make run`), or name" in capsys.readouterr().err
