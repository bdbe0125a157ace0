"""Powertools' EMF records become the CloudWatch metric data AWS would extract."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from hookline.local.metrics import metric_data


def test_an_emf_record_becomes_metric_data() -> None:
    metrics = Metrics(namespace="Hookline", service="hookline")
    metrics.add_dimension(name="provider", value="stripe")
    metrics.add_metric(name="WebhooksAccepted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="WebhooksAccepted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="EndToEndLatency", unit=MetricUnit.Milliseconds, value=12.5)
    record = json.loads(json.dumps(metrics.serialize_metric_set()))
    metrics.clear_metrics()

    data = {datum["MetricName"]: (namespace, datum) for namespace, datum in metric_data(record)}

    namespace, accepted = data["WebhooksAccepted"]
    assert namespace == "Hookline"
    assert accepted["Values"] == [1.0, 1.0]
    assert accepted["Unit"] == "Count"
    assert {d["Name"]: d["Value"] for d in accepted["Dimensions"]} == {
        "service": "hookline",
        "provider": "stripe",
    }
    assert isinstance(accepted["Timestamp"], datetime)
    assert accepted["Timestamp"].tzinfo is UTC
    assert data["EndToEndLatency"][1]["Values"] == [12.5]


def test_a_line_that_is_not_emf_gives_nothing() -> None:
    assert metric_data({"level": "INFO", "message": "hello"}) == []
