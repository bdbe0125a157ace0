"""The circuit breaker pauses the consumer while PostgreSQL is down, and resumes it.

moto's Lambda event source mapping, CloudWatch and DynamoDB with the real boto3
client; ReconcilerFunction's real handler.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from hookline.local.metrics import metric_data
from hookline.metric_names import Metric
from hookline.observability import count, metrics
from hookline.reconcile.breaker import STATE_KEY

from tests.conftest import UNREACHABLE_DATABASE, point_reconciler_at
from tests.support.pipeline import Pipeline

Handler = Any


@pytest.fixture
def mapping(pipeline: Pipeline) -> str:
    """The consumer and its SQS event source mapping, as SAM creates them."""
    iam: Any = boto3.client("iam")
    role = iam.create_role(RoleName="consumer", AssumeRolePolicyDocument=json.dumps({}))
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    client: Any = boto3.client("lambda")
    client.create_function(
        FunctionName="ConsumerFunction",
        Runtime="python3.13",
        Role=role["Role"]["Arn"],
        Handler="app.lambda_handler",
        Code={"ZipFile": code.getvalue()},
    )
    created = client.create_event_source_mapping(
        EventSourceArn=pipeline.stack.queue_arn, FunctionName="ConsumerFunction", BatchSize=10
    )
    return str(created["UUID"])


def state(uuid: str) -> str:
    client: Any = boto3.client("lambda")
    return str(client.get_event_source_mapping(UUID=uuid)["State"])


def consumer_database_failures(value: float) -> None:
    """What the consumer counts, put into CloudWatch as Lambda's log pipeline would: the
    breaker must read the namespace and dimensions the consumer emits, whatever they are."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        metrics.flush_metrics()  # anything counted before is not the consumer's
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        count(Metric.DATABASE_FAILURES, value)
        metrics.flush_metrics()
    cloudwatch: Any = boto3.client("cloudwatch")
    for line in printed.getvalue().splitlines():
        for namespace, datum in metric_data(json.loads(line)):
            datum["Timestamp"] = datetime.now(UTC)
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=[datum])


def another_stacks_database_failures(value: float) -> None:
    """DatabaseFailures of a second stack that shares the namespace (its own service)."""
    cloudwatch: Any = boto3.client("cloudwatch")
    cloudwatch.put_metric_data(
        Namespace=metrics.namespace,
        MetricData=[
            {
                "MetricName": Metric.DATABASE_FAILURES,
                "Dimensions": [{"Name": "service", "Value": "another-stack"}],
                "Value": value,
                "Unit": "Count",
                "Timestamp": datetime.now(UTC),
            }
        ],
    )


def breaker_item(pipeline: Pipeline) -> dict[str, Any] | None:
    item = pipeline.stack.dynamodb.get_item(
        TableName=pipeline.stack.idempotency_table, Key={"id": {"S": STATE_KEY}}
    )
    found: dict[str, Any] | None = item.get("Item")
    return found


@pytest.fixture
def database_down(monkeypatch: pytest.MonkeyPatch) -> None:
    point_reconciler_at(monkeypatch, UNREACHABLE_DATABASE)


def test_the_breaker_opens_while_the_database_is_down_and_closes_after(
    pipeline: Pipeline,
    reconcile: Handler,
    mapping: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer_database_failures(12)  # over BreakerThreshold (10)
    point_reconciler_at(monkeypatch, UNREACHABLE_DATABASE)

    assert reconcile({"action": "reconcile"})["breaker"] == "opened"
    assert state(mapping) == "Disabled"
    assert breaker_item(pipeline) is not None
    assert reconcile({"action": "reconcile"})["breaker"] == "open"

    point_reconciler_at(monkeypatch, database_url)  # the database is back
    answer = reconcile({"action": "reconcile"})
    assert answer["ok"] is True
    assert answer["breaker"] == "closed_now"
    assert state(mapping) == "Enabled"
    assert breaker_item(pipeline) is None
    assert reconcile({"action": "reconcile"})["breaker"] == "closed"


def test_below_the_threshold_the_breaker_stays_closed(
    reconcile: Handler, mapping: str, database_down: None
) -> None:
    consumer_database_failures(3)
    assert reconcile({"action": "reconcile"})["breaker"] == "closed"
    assert state(mapping) == "Enabled"


def test_another_stacks_failures_never_open_this_breaker(
    reconcile: Handler, mapping: str, database_down: None
) -> None:
    another_stacks_database_failures(50)
    consumer_database_failures(3)
    assert reconcile({"action": "reconcile"})["breaker"] == "closed"
    assert state(mapping) == "Enabled"


def test_a_mapping_an_operator_disabled_stays_disabled(reconcile: Handler, mapping: str) -> None:
    client: Any = boto3.client("lambda")
    client.update_event_source_mapping(UUID=mapping, Enabled=False)
    assert reconcile({"action": "reconcile"})["breaker"] == "closed"
    assert state(mapping) == "Disabled"
