"""The one place logger, tracer and metrics are created.

Service name and namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE (set by template.yaml).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger(service="hookline", log_uncaught_exceptions=True)
tracer = Tracer(service="hookline")
metrics = Metrics(namespace="Hookline", service="hookline")

# Counted by the consumer, read by the reconciler's circuit breaker.
DATABASE_FAILURES_METRIC = "DatabaseFailures"


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Count `name` once in total (what alarms watch) and once per dimension set given.

    CloudWatch alarms need an exact dimension set, so the total is emitted with
    only the service dimension, and the breakdown (per provider, per reason) as
    a separate metric of the same name for dashboards.
    """
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if not dimensions:
        return
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


def gauge(name: str, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    """A state as a number (e.g. BreakerOpen, 0 or 1): alarms watch its Maximum."""
    metrics.add_metric(name=name, unit=unit, value=value)
