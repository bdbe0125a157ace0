"""Local containers behave as Lambda's: warm reuse, a real context, timeouts, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hookline.local.console import Console
from hookline.local.runtime import (
    ContainerDied,
    FunctionPool,
    Invocation,
    container_environment,
    source_launch,
)
from hookline.local.sources import Scheduler, scheduled_event
from hookline.local.wiring import FunctionSpec, Schedule

from tests.support.local_stack import eventually

ROOT = Path(__file__).resolve().parents[3]

HANDLER = """
import os, time
STARTED = time.time()  # once per container

def lambda_handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("bad input")
    print("a log line from the function")
    return {
        "pid": os.getpid(),
        "started": STARTED,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "greeting": os.environ["GREETING"],
        "endpoint": os.environ["AWS_ENDPOINT_URL"],
    }
"""


def spec(code: Path, timeout: int = 3) -> FunctionSpec:
    return FunctionSpec(
        logical_id="EchoFunction",
        code_dir=code,
        handler="app.lambda_handler",
        runtime="python3.13",
        architecture="x86_64",
        timeout_seconds=timeout,
        memory_mb=256,
        # Declared empty, as template.yaml declares it: the stack's endpoint must win.
        environment={"GREETING": "hello", "AWS_ENDPOINT_URL": ""},
        layers=(),
    )


@pytest.fixture
def lines() -> list[tuple[str, str]]:
    return []


def pool_for(code: Path, lines: list[tuple[str, str]], **overrides: Any) -> FunctionPool:
    function = spec(code, **overrides)
    return FunctionPool(
        function,
        source_launch(function),
        container_environment(function, "http://127.0.0.1:5999", "us-east-1"),
        lambda label, line: lines.append((label, line)),
        concurrency=2,
    )


@pytest.fixture
def echo(tmp_path: Path, lines: list[tuple[str, str]]) -> Iterator[FunctionPool]:
    (tmp_path / "app.py").write_text(HANDLER)
    pool = pool_for(tmp_path, lines)
    yield pool
    pool.close()


def test_invocations_get_a_lambda_context_and_reuse_a_warm_container(
    echo: FunctionPool, lines: list[tuple[str, str]]
) -> None:
    first = echo.invoke({})
    second = echo.invoke({})
    assert not first.failed
    assert first.result["pid"] == second.result["pid"]
    assert first.result["started"] == second.result["started"]
    assert first.result["request_id"] == first.request_id != second.request_id
    assert 2000 < first.result["remaining_ms"] <= 3000
    assert first.result["function_name"] == "EchoFunction"
    assert first.result["memory"] == 256
    assert first.result["arn"].endswith(":function:EchoFunction")
    assert first.result["greeting"] == "hello"
    assert first.result["endpoint"] == "http://127.0.0.1:5999"
    assert ("EchoFunction#1", "a log line from the function") in lines


def test_a_function_error_is_reported_as_lambda_reports_it(echo: FunctionPool) -> None:
    failed = echo.invoke({"fail": True})
    assert failed.error is not None
    assert failed.error["errorType"] == "ValueError"
    assert failed.error["errorMessage"] == "bad input"
    # The container survives a function error.
    assert not echo.invoke({}).failed


def test_a_timeout_kills_the_container_and_the_next_call_gets_a_new_one(
    tmp_path: Path, lines: list[tuple[str, str]]
) -> None:
    (tmp_path / "app.py").write_text(HANDLER)
    pool = pool_for(tmp_path, lines, timeout=1)
    try:
        before = pool.invoke({})
        timed_out = pool.invoke({"sleep": 5})
        after = pool.invoke({})
    finally:
        pool.close()
    assert timed_out.error is not None
    assert timed_out.error["errorType"] == "Sandbox.Timedout"
    assert after.result["pid"] != before.result["pid"]


def test_a_function_that_cannot_import_fails_to_start(
    tmp_path: Path, lines: list[tuple[str, str]]
) -> None:
    (tmp_path / "app.py").write_text("import no_such_dependency\n")
    pool = pool_for(tmp_path, lines)
    with pytest.raises(ContainerDied, match=r"Runtime\.ImportModuleError.*no_such_dependency"):
        pool.warm()
    assert pool.invoke({}).error["errorType"] == "Runtime.InitError"  # type: ignore[index]
    pool.close()


def test_the_scheduler_invokes_with_an_eventbridge_event() -> None:
    schedule = Schedule("ReconcilerFunction", "Tick", "rate(5 minutes)", 1, True, None)
    calls: list[dict[str, Any]] = []

    def invoke(function: str, event: dict[str, Any]) -> Invocation:
        calls.append(event)
        return Invocation("r", result={})

    scheduler = Scheduler(schedule, invoke, lambda *_: None, "us-east-1")
    scheduler.start()
    try:
        eventually(lambda: calls, timeout=10)
    finally:
        scheduler.stop(5)
    assert calls[0]["detail-type"] == "Scheduled Event"
    assert calls[0]["source"] == "aws.events"
    # The file for `sam local invoke ReconcilerFunction -e` has the same shape.
    sample = json.loads((ROOT / "events" / "reconciler-schedule.json").read_text())
    assert set(sample) == set(calls[0])


def test_a_schedule_with_fixed_input_sends_that_input() -> None:
    schedule = Schedule("F", "Tick", "rate(1 minute)", 60, True, '{"action": "reconcile"}')
    assert scheduled_event(schedule, "us-east-1") == {"action": "reconcile"}


def test_console_turns_log_records_into_short_lines() -> None:
    import io

    stream = io.StringIO()
    console = Console(stream, level="INFO")
    record = {
        "level": "INFO",
        "message": "event handled",
        "timestamp": "2026-11-23 10:00:00,000+0000",
        "service": "hookline",
        "cold_start": False,
        "function_request_id": "abc",
        "provider": "stripe",
        "status": "applied",
    }
    console.function_line("ConsumerFunction#1", json.dumps(record))
    console.function_line("ConsumerFunction#1", json.dumps({"_aws": {}, "EventsApplied": [1]}))
    console.function_line("ConsumerFunction#1", "plain text")
    text = stream.getvalue()
    assert "event handled provider=stripe status=applied" in text
    assert "function_request_id" not in text
    assert "plain text" in text
    assert "metrics" not in text  # DEBUG, below the INFO threshold
