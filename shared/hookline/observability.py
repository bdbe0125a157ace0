"""The one place logger, tracer and metrics are created.

Service name and namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE, read once at import (template.yaml sets them: the
service is the stack's name, the namespace its MetricsNamespace parameter), and
default to "hookline" and "Hookline" where unset (tests, scripts). Every metric
carries the service as its one default dimension, so two stacks in one account
and region never mix in an alarm, even when they share a namespace.

LOG_LEVEL sets hookline's own logger only. The AWS SDK and HTTP libraries log
at WARNING or above whatever LOG_LEVEL or the Lambda runtime's log level says:
at DEBUG botocore logs every request and response body (secret values, queued
webhooks), urllib3 every URL, and the X-Ray SDK every trace it sends.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from hookline.metric_names import Metric

DEFAULT_SERVICE_NAME = "hookline"
DEFAULT_METRICS_NAMESPACE = "Hookline"
# Explicit values, read here: Powertools would default to "service_undefined" and no namespace.
SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE_NAME
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE

logger = Logger(service=SERVICE_NAME, log_uncaught_exceptions=True)
tracer = Tracer(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)

WIRE_LOGGERS = ("botocore", "boto3", "urllib3", "aws_xray_sdk")


def quiet_wire_loggers() -> None:
    """Cap the libraries that log what goes over the wire at WARNING (see above)."""
    for name in WIRE_LOGGERS:
        wire = logging.getLogger(name)
        wire.setLevel(max(wire.level, logging.WARNING))


# On import: every function imports this module before it makes an AWS call.
quiet_wire_loggers()

# Counted by the consumer, read by the reconciler's circuit breaker.
DATABASE_FAILURES_METRIC = Metric.DATABASE_FAILURES


def count(name: Metric, value: float = 1, **dimensions: str) -> None:
    """Count `name` once in total (what alarms watch) and once per dimension set given.

    CloudWatch alarms need an exact dimension set, so the total is emitted with
    only the service dimension, and the breakdown (per provider, per reason) as
    a separate metric of the same name for dashboards.
    """
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if not dimensions:
        return
    # The service given here, not read again from the environment by Powertools: the
    # breakdown carries the same service as the total (dashboards search on it).
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=METRICS_NAMESPACE,
        default_dimensions={"service": SERVICE_NAME, **metrics.default_dimensions},
    ) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


def gauge(name: Metric, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    """A state as a number (e.g. BreakerOpen, 0 or 1): alarms watch its Maximum."""
    metrics.add_metric(name=name, unit=unit, value=value)
