"""Option parsing: the shared options wherever they are given, which stack they name
(the samconfig rule), requests built from the options, and answers' exit codes.

The stack is replaced at hookline.remote's boundary (what a Lambda invoke would
answer); the defects themselves are tested through the console script in
tests/e2e/test_cli.py.
"""

from __future__ import annotations

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
    assert main(["redrive"]) == 130
    assert capsys.readouterr().err == "\n"
