"""Tracing off loads no X-Ray SDK; tracing on records each invocation.

Each case runs in a fresh interpreter, as a Lambda container imports a function:
the environment is set before any code runs, and sys.modules shows everything
the import and one invocation loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("receiver", "consumer", "reconciler", "migrations")

# The handler's own work is stubbed (no AWS, no database): only its decorators run.
INVOKE = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
imported = "aws_xray_sdk" in sys.modules

from hookline import observability
from tests.support.lambda_context import FakeLambdaContext

class Answers:
    def handle(self, event, context):
        return {"ok": True}
    resolve = handle

answers = Answers()
for name in ("app", "consumer", "reconciler", "migrations_function"):
    if hasattr(app, name):
        setattr(app, name, answers if name == "app" else lambda: answers)

recorded = None
if observability.tracing_enabled():
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core import xray_recorder
    # Outside Lambda Powertools turns the SDK off; a sampled segment, never sent.
    global_sdk_config.set_sdk_enabled(True)
    segment = xray_recorder.begin_segment("hookline-test", sampling=1)
answer = app.lambda_handler({}, FakeLambdaContext())
if observability.tracing_enabled():
    recorded = [s.name for s in segment.subsegments]
print(json.dumps({
    "answer": answer,
    "tracer": type(observability.tracer).__name__,
    "xray_after_import": imported,
    "xray_after_invoke": "aws_xray_sdk" in sys.modules,
    "recorded": recorded,
}))
"""


def invoke(function: str, trace_disabled: str) -> dict[str, Any]:
    environment = {
        **os.environ,
        "POWERTOOLS_TRACE_DISABLED": trace_disabled,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    run = subprocess.run(
        [sys.executable, "-c", INVOKE, str(ROOT / "functions" / function), str(ROOT)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answer: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return answer


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("disabled", ["true", "1"])
def test_a_function_with_tracing_off_never_imports_the_xray_sdk(
    function: str, disabled: str
) -> None:
    answer = invoke(function, disabled)
    assert answer["answer"] == {"ok": True}
    assert answer["tracer"] == "DisabledTracer"
    assert not answer["xray_after_import"]
    assert not answer["xray_after_invoke"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_with_tracing_on_records_its_invocation(function: str) -> None:
    answer = invoke(function, "false")
    assert answer["answer"] == {"ok": True}
    assert answer["tracer"] == "Tracer"
    assert answer["recorded"] == ["## lambda_handler"]
