"""Nothing a function returns reaches X-Ray, and DEBUG logging never shows secrets or bodies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aws_xray_sdk import global_sdk_config  # type: ignore[import-untyped]
from aws_xray_sdk.core import xray_recorder  # type: ignore[import-untyped]

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
            # The breakdown carries the service too: the dashboard searches on it.
            [namespace, ["provider", "service"], {"provider": "stripe", "service": service}],
            # The total, with the service alone: what alarms and the breaker read.
            [namespace, ["service"], {"service": service}],
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
