"""The reconciler's wiring in template.yaml, and a runbook section for every alarm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hookline import template

ROOT = Path(__file__).resolve().parents[2]


def properties(document: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(template.resource(document, name)["Properties"])


def test_reconciler_runs_alone_on_its_schedule() -> None:
    document = template.load()
    reconciler = properties(document, "ReconcilerFunction")
    assert reconciler["ReservedConcurrentExecutions"] == 1
    schedule = reconciler["Events"]["Schedule"]
    assert schedule["Type"] == "Schedule"
    assert schedule["Properties"]["Schedule"] == {"Ref": "ReconcileSchedule"}
    assert document["Parameters"]["ReconcileSchedule"]["Default"] == "rate(5 minutes)"
    environment = reconciler["Environment"]["Variables"]
    # DESIGN.md's names, from parameters with DESIGN's defaults.
    for variable, parameter, default in (
        ("MAX_REDRIVES", "MaxRedrives", 3),
        ("RETENTION_DAYS", "RetentionDays", 30),
        ("ORPHAN_DEADLINE_HOURS", "OrphanDeadlineHours", 72),
    ):
        assert environment[variable] == {"Ref": parameter}
        assert document["Parameters"][parameter]["Default"] == default
    assert environment["DLQ_URL"] == {"Ref": "EventsDLQ"}
    assert environment["QUEUE_URL"] == {"Ref": "EventsQueue"}


def test_retention_outlasts_the_queue() -> None:
    document = template.load()
    days = document["Parameters"]["RetentionDays"]["MinValue"]
    retention_seconds = properties(document, "EventsQueue")["MessageRetentionPeriod"]
    # A redelivered message must still find its ledger row.
    assert days * 86400 > retention_seconds


def test_every_alarm_notifies_and_has_a_runbook_section() -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text()
    alarms = {
        name: found["Properties"]
        for name, found in template.load()["Resources"].items()
        if found["Type"] == "AWS::CloudWatch::Alarm"
    }
    reconciler_alarms = {
        "ReconcilerErrorsAlarm",
        "ParkedEventsAlarm",
        "RecoveredEventsAlarm",
        "BreakerOpenAlarm",
        "ReconcileStepFailuresAlarm",
        "EventsWaitingAlarm",
    }
    assert reconciler_alarms <= set(alarms)
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert f"docs/operations.md#{name.lower()}" in alarm["AlarmDescription"], name
        assert f"\n## {name}\n" in runbook, name
