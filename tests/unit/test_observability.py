"""Nothing a function returns reaches X-Ray, and DEBUG logging never shows secrets or bodies."""

from __future__ import annotations

import enum
import io
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from aws_xray_sdk import global_sdk_config  # type: ignore[import-untyped]
from aws_xray_sdk.core import xray_recorder  # type: ignore[import-untyped]
from hookline.local.metrics import metric_data
from hookline.metric_names import Metric
from hookline.observability import (
    SERVICE_NAME,
    HooklineFormatter,
    count,
    gauge,
    logger,
    metrics,
)

from tests.support.lambda_context import FakeLambdaContext
from tests.support.stack import load_function

CUSTOMER_DATA = "jane.customer@example.com"
ANSWER = {"ok": True, "parked": {"payload": {"customer": {"email": CUSTOMER_DATA}}}}


class Answers:
    """Stands in for what each handler delegates to: it answers with customer data."""

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return ANSWER

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return ANSWER


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A sampled X-Ray segment the handler's subsegment is recorded under, never sent."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("POWERTOOLS_TRACER_CAPTURE_RESPONSE", raising=False)
    enabled = global_sdk_config.sdk_enabled()
    global_sdk_config.set_sdk_enabled(True)
    segment = xray_recorder.begin_segment("hookline-test", sampling=1)
    try:
        yield segment
    finally:
        xray_recorder.clear_trace_entities()
        global_sdk_config.set_sdk_enabled(enabled)


@pytest.mark.parametrize(
    ("function", "delegate"),
    [("reconciler", "reconciler"), ("consumer", "consumer"), ("receiver", "app")],
)
def test_no_handler_answer_is_recorded_in_the_trace(
    trace: Any, monkeypatch: pytest.MonkeyPatch, function: str, delegate: str
) -> None:
    app = load_function(function)
    answers = Answers()
    monkeypatch.setattr(app, delegate, answers if delegate == "app" else lambda: answers)
    assert app.lambda_handler({}, FakeLambdaContext()) == ANSWER
    [handler] = [s for s in trace.subsegments if s.name == "## lambda_handler"]
    assert handler.annotations["Service"] == "hookline"  # the trace was recorded
    assert CUSTOMER_DATA not in json.dumps(trace.to_dict(), default=str)


# Run in a fresh interpreter: the root logger at DEBUG, as the Lambda runtime
# sets it for a function whose log level is DEBUG, before hookline is imported.
DEBUG_RUN = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
# moto stands in for AWS here; its own logs are not the code under test.
logging.getLogger("moto").setLevel(logging.WARNING)
import boto3
from moto import mock_aws
from hookline.observability import logger

SECRET, BODY = sys.argv[1], sys.argv[2]
with mock_aws():
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="hookline/webhook-secrets", SecretString=SECRET)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    logger.debug("hookline debug logging is on")
    read = secrets.get_secret_value(SecretId="hookline/webhook-secrets")["SecretString"]
    assert read == SECRET
    sqs.send_message(QueueUrl=url, MessageBody=BODY)
    [message] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert message["Body"] == BODY
"""


def test_debug_logging_shows_no_secret_value_and_no_message_body() -> None:
    secret = '{"stripe": ["whsec_never-in-a-log-0123456789"]}'
    body = '{"provider": "stripe", "body": "card of customer never-in-a-log-9876"}'
    environment = {
        **os.environ,
        "LOG_LEVEL": "DEBUG",
        "POWERTOOLS_SERVICE_NAME": "hookline",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    environment.pop("AWS_ENDPOINT_URL", None)
    environment.pop("AWS_PROFILE", None)
    run = subprocess.run(
        [sys.executable, "-c", DEBUG_RUN, secret, body],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "hookline debug logging is on" in output
    assert "never-in-a-log" not in output


# A fresh interpreter per case: the names are read once, at import, as in a Lambda
# container whose environment is set before any code runs. argv[1] says what is
# imported first; a team's own module may build Powertools objects of its own.
NAMING_RUN = """
import importlib, io, json, sys, contextlib
first = sys.argv[1]
if first == "team-powertools-first":
    from aws_lambda_powertools import Logger, Metrics
    Metrics(namespace="TeamOwn", service="team-service")
    Logger(service="team-service")
elif first != "observability":
    importlib.import_module(first)
from hookline import observability
from hookline.metric_names import Metric
from hookline.reconcile.breaker import CircuitBreaker

printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    observability.count(Metric.WEBHOOKS_ACCEPTED, provider="stripe")
    observability.metrics.flush_metrics()
records = [json.loads(line) for line in printed.getvalue().splitlines()]
emitted = [
    (directive["Namespace"], sorted(names), {name: record[name] for name in names})
    for record in records
    for directive in record["_aws"]["CloudWatchMetrics"]
    for names in directive["Dimensions"]
]
breaker = CircuitBreaker(
    lambda_client=None, cloudwatch=None, dynamodb=None, table="t",
    consumer_function="f", queue_arn="q", threshold=1,
)
print(json.dumps({
    "logger": observability.logger.service,
    "tracer": observability.tracer.service,
    "emitted": emitted,
    "breaker": [breaker.namespace, breaker.service],
}))
"""


def naming(first: str, **environment: str) -> dict[str, Any]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE")
    }
    env.update(environment, AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_TRACE_DISABLED="true")
    run = subprocess.run(
        [sys.executable, "-c", NAMING_RUN, first],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answer: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return answer


def expected(namespace: str, service: str) -> dict[str, Any]:
    return {
        "logger": service,
        "tracer": service,
        "emitted": [
            # The total, with the service alone: what alarms and the breaker read.
            [namespace, ["service"], {"service": service}],
            # The breakdown carries the service too: the dashboard searches on it.
            [namespace, ["provider", "service"], {"provider": "stripe", "service": service}],
        ],
        "breaker": [namespace, service],
    }


@pytest.mark.parametrize(
    "first", ["observability", "hookline.reconcile.breaker", "team-powertools-first"]
)
def test_the_environment_names_the_service_and_namespace_whatever_is_imported_first(
    first: str,
) -> None:
    answer = naming(
        first, POWERTOOLS_SERVICE_NAME="shop-prod", POWERTOOLS_METRICS_NAMESPACE="Shop/Webhooks"
    )
    assert answer == expected("Shop/Webhooks", "shop-prod")


def test_without_the_environment_the_names_are_hookline_s_defaults() -> None:
    assert naming("observability") == expected("Hookline", "hookline")
    # Set but empty (an unset template parameter) is the same as unset.
    empty = naming("observability", POWERTOOLS_SERVICE_NAME="", POWERTOOLS_METRICS_NAMESPACE="")
    assert empty == expected("Hookline", "hookline")


# ------------------------------------------------------------------ breakdowns in one line

Count = tuple[Metric, float, dict[str, str]]
# (namespace, metric, unit, dimensions, value): one sample CloudWatch receives.
Sample = tuple[str, str, str, frozenset[tuple[str, str]], float]


@pytest.fixture
def emf(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The EMF records printed since the last call, the line flushed as log_metrics does."""
    metrics.clear_metrics()

    def records() -> list[dict[str, Any]]:
        metrics.flush_metrics()
        return [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]

    yield records
    metrics.clear_metrics()


def received(records: list[dict[str, Any]]) -> Counter[Sample]:
    """What CloudWatch makes of the records, read as the local stack's forwarder reads them."""
    samples: Counter[Sample] = Counter()
    for record in records:
        for namespace, datum in metric_data(record):
            dimensions = frozenset((d["Name"], d["Value"]) for d in datum["Dimensions"])
            for value in datum["Values"]:
                samples[(namespace, datum["MetricName"], datum["Unit"], dimensions, value)] += 1
    return samples


def intended(counts: list[Count], line: dict[str, str] | None = None) -> Counter[Sample]:
    """count()'s contract: each value once with the line's dimensions (the total), and
    once more with the service and its own dimensions (the breakdown), when it has any."""
    samples: Counter[Sample] = Counter()
    for name, value, dimensions in counts:
        total = {"service": SERVICE_NAME, **(line or {})}
        samples[("Hookline", name.value, "Count", frozenset(total.items()), value)] += 1
        if dimensions:
            breakdown = {"service": SERVICE_NAME, **dimensions}
            samples[("Hookline", name.value, "Count", frozenset(breakdown.items()), value)] += 1
    return samples


def check_shape(records: list[dict[str, Any]]) -> None:
    """Each record as the EMF specification allows and CloudWatch reads it."""
    for record in records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            assert 1 <= len(directive["Metrics"]) <= 100
            for names in directive["Dimensions"]:
                assert 1 <= len(names) <= 30
                assert all(isinstance(record[name], str) for name in names)
            assert all(metric["Name"] in record for metric in directive["Metrics"])


def test_a_webhook_s_total_and_breakdown_leave_in_one_line(
    emf: Callable[[], list[dict[str, Any]]],
) -> None:
    count(Metric.WEBHOOKS_ACCEPTED, provider="stripe")
    [record] = emf()
    total, breakdown = record["_aws"]["CloudWatchMetrics"]
    # The total's directive as Powertools writes it: alarms and readers match [["service"]].
    assert total["Dimensions"] == [["service"]]
    assert breakdown["Dimensions"] == [["service", "provider"]]
    assert (
        total["Metrics"] == breakdown["Metrics"] == [{"Name": "WebhooksAccepted", "Unit": "Count"}]
    )
    assert record["WebhooksAccepted"] == [1.0]
    assert received([record]) == intended([(Metric.WEBHOOKS_ACCEPTED, 1, {"provider": "stripe"})])


SCENARIOS: dict[str, list[Count]] = {
    # One root value per key: the second provider's breakdown goes out apart.
    "two metrics, two providers": [
        (Metric.WEBHOOKS_ACCEPTED, 1, {"provider": "stripe"}),
        (Metric.SIGNATURE_REJECTED, 1, {"provider": "github"}),
        (Metric.WEBHOOKS_ACCEPTED, 1, {"provider": "stripe"}),
    ],
    "rejected": [
        (Metric.WEBHOOKS_REJECTED, 1, {"reason": "mismatch"}),
        (Metric.SIGNATURE_REJECTED, 1, {"provider": "github"}),
    ],
    "a consumer batch": [
        (Metric.EVENTS_APPLIED, 1, {}),
        (Metric.EVENTS_RECOVERED, 1, {"provider": "stripe"}),
        (Metric.EVENTS_APPLIED, 1, {}),
        (Metric.EVENTS_RECOVERED, 1, {"provider": "stripe"}),
        # Another provider: one root value per key, so this one goes out apart...
        (Metric.EVENTS_RECOVERED, 1, {"provider": "square"}),
        (Metric.EVENTS_FAILED, 1, {"kind": "transient"}),
        (Metric.EVENTS_FAILED, 1, {"kind": "permanent"}),
        (Metric.EVENTS_PARKED, 1, {"reason": "poison"}),
        (Metric.EVENTS_RECOVERED, 1, {"provider": "stripe"}),
    ],
    "the reconciler": [
        (Metric.RECOVERY_SKIPPED, 1, {"provider": "stripe", "reason": "paused"}),
        (Metric.RECOVERY_ENQUEUED, 3, {"provider": "stripe"}),
        (Metric.RECOVERY_ENQUEUED, 0, {"provider": "square"}),
        (Metric.RECOVERY_SKIPPED, 1, {"provider": "square", "reason": "paused"}),
        (Metric.RECOVERY_ENQUEUED, 2, {}),  # the total alone, after breakdowns of its name
    ],
    "a breakdown, then its total alone": [
        (Metric.WEBHOOKS_ACCEPTED, 1, {"provider": "stripe"}),
        (Metric.WEBHOOKS_ACCEPTED, 1, {}),
    ],
    "a total, then its breakdown": [
        (Metric.WEBHOOKS_ACCEPTED, 1, {}),
        (Metric.WEBHOOKS_ACCEPTED, 1, {"provider": "stripe"}),
    ],
    # Powertools prints a metric's line by itself at 100 values.
    "past a full line": [(Metric.WEBHOOKS_ACCEPTED, 1, {"provider": "stripe"})] * 150,
}


@pytest.mark.parametrize("counts", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_cloudwatch_receives_every_total_and_breakdown_exactly_once(
    emf: Callable[[], list[dict[str, Any]]], counts: list[Count]
) -> None:
    for name, value, dimensions in counts:
        count(name, value, **dimensions)
    records = emf()
    check_shape(records)
    assert received(records) == intended(counts)


def test_a_blank_dimension_is_left_out_and_a_count_without_one_is_the_total_alone(
    emf: Callable[[], list[dict[str, Any]]],
) -> None:
    count(Metric.EVENTS_FAILED, kind=" ")
    count(Metric.RECOVERY_SKIPPED, provider="stripe", reason="")
    records = emf()
    assert received(records) == intended(
        [(Metric.EVENTS_FAILED, 1, {}), (Metric.RECOVERY_SKIPPED, 1, {"provider": "stripe"})]
    )


def test_a_team_s_own_dimensions_and_metadata_never_change_a_breakdown(
    emf: Callable[[], list[dict[str, Any]]],
) -> None:
    """A key the line already holds with another value sends the breakdown out apart."""
    count(Metric.WEBHOOKS_ACCEPTED, provider="stripe")
    count(Metric.SIGNATURE_REJECTED, provider="github")
    metrics.add_dimension(name="tenant", value="shop-a")  # the line's own: totals carry it
    metrics.add_metadata(key="provider", value="a team's note")  # the root key, taken later
    count(Metric.EVENTS_PARKED, reason="poison")
    gauge(Metric.BREAKER_OPEN, 0)
    records = emf()
    check_shape(records)
    counted: list[Count] = [
        (Metric.WEBHOOKS_ACCEPTED, 1, {"provider": "stripe"}),
        (Metric.SIGNATURE_REJECTED, 1, {"provider": "github"}),
        (Metric.EVENTS_PARKED, 1, {"reason": "poison"}),
    ]
    expected = intended(counted, line={"tenant": "shop-a"})
    line = frozenset({"service": SERVICE_NAME, "tenant": "shop-a"}.items())
    expected[("Hookline", "BreakerOpen", "Count", line, 0.0)] += 1
    assert received(records) == expected
    # The team's metadata stays as they set it, in the line that carries the totals.
    [totals] = [record for record in records if "BreakerOpen" in record]
    assert totals["provider"] == "a team's note"


def test_metrics_disabled_prints_no_breakdown(
    emf: Callable[[], list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    count(Metric.SIGNATURE_REJECTED, provider="github")
    count(Metric.SIGNATURE_REJECTED, provider="stripe")  # would go out apart
    assert emf() == []


# ------------------------------------------------------------------ log lines


class Color(enum.StrEnum):
    RED = "red"


MESSAGES: list[tuple[Any, ...]] = [
    ("webhook queued",),
    ('{"object": ["as", "json"]}',),
    ("  [1, 2]",),
    ("\n-3",),
    ("true",),
    ("true story",),
    ("null",),
    ("NaN",),
    ("Infinity and beyond",),
    ("",),
    ("   ",),
    ("\ufeff{}",),
    ("caf\u00e9 \ud800",),
    ("nothing %s", "here"),
    ('{"formatted": %d}', 1),
    ({"a": "dict"},),
    (Color.RED,),
    (42,),
]


def emit(log: Logger, level: str, message: Any, *args: Any) -> None:
    # One call site for both loggers: "location" names this line for each.
    getattr(log, level)(message, *args, extra={"provider": "stripe", "message_id": "m-1"})


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    found = []
    for line in buffer.getvalue().splitlines():
        record = json.loads(line)
        # What differs between any two loggers and invocations.
        for key in ("timestamp", "service", "function_request_id", "cold_start"):
            record.pop(key, None)
        found.append(record)
    return found


def test_hookline_s_log_lines_are_powertools_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """HooklineFormatter skips only a parse that must fail: each line is as Powertools writes it."""
    assert isinstance(logger.registered_formatter, HooklineFormatter)
    reference = Logger(service="hookline-reference", log_uncaught_exceptions=True)
    ours, theirs = io.StringIO(), io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", ours)
    monkeypatch.setattr(reference.registered_handler, "stream", theirs)

    def run(log: Logger) -> None:
        @log.inject_lambda_context(clear_state=True)
        def handler(event: dict[str, Any], context: Any) -> None:
            log.set_correlation_id("evt_1")
            for message in MESSAGES:
                emit(log, "info", *message)
            try:
                raise ValueError("boom")
            except ValueError:
                emit(log, "exception", "it failed")

        handler({}, FakeLambdaContext())
        emit(log, "warning", "after the invocation")
        log.clear_state()
        emit(log, "info", "after clear_state")

    run(logger)
    run(reference)
    assert len(lines(ours)) == len(MESSAGES) + 3
    assert lines(ours) == lines(theirs)
    assert json.loads(ours.getvalue().splitlines()[0])["service"] == SERVICE_NAME
