"""The one place logger, tracer and metrics are created.

Service name and namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE, read once at import (template.yaml sets them: the
service is the stack's name, the namespace its MetricsNamespace parameter), and
default to "hookline" and "Hookline" where unset (tests, scripts). Every metric
carries the service as its one default dimension, so two stacks in one account
and region never mix in an alarm, even when they share a namespace.

Tracing is on unless POWERTOOLS_TRACE_DISABLED says otherwise (template.yaml's
Tracing parameter sets it). With tracing off, `tracer` is a DisabledTracer, so
the X-Ray SDK (about 100 ms of a cold start: Powertools' Tracer imports it and
patches botocore even when told it is disabled) is never imported. With tracing
on, it is Powertools' Tracer.

LOG_LEVEL sets hookline's own logger only. The AWS SDK and HTTP libraries log
at WARNING or above whatever LOG_LEVEL or the Lambda runtime's log level says:
at DEBUG botocore logs every request and response body (secret values, queued
webhooks), urllib3 every URL, and the X-Ray SDK every trace it sends.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from aws_lambda_powertools.shared.functions import strtobool

from hookline.metric_names import Metric

DEFAULT_SERVICE_NAME = "hookline"
DEFAULT_METRICS_NAMESPACE = "Hookline"
# Explicit values, read here: Powertools would default to "service_undefined" and no namespace.
SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE_NAME
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE

if TYPE_CHECKING:
    from aws_lambda_powertools.tracing import Tracer

Function = TypeVar("Function", bound=Callable[..., Any])


def _unchanged(function: Function) -> Function:
    return function


class DisabledTracer:
    """Powertools' Tracer as hookline and a team's handlers use it, recording
    nothing, with no X-Ray SDK imported. Signatures as Powertools' own."""

    disabled = True

    def __init__(self, service: str) -> None:
        self.service = service

    def capture_lambda_handler(
        self,
        lambda_handler: Callable[..., Any] | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Callable[..., Any]:
        # Used bare (`@tracer.capture_lambda_handler`) or called with options.
        return _unchanged if lambda_handler is None else lambda_handler

    @overload
    def capture_method(self, method: Function) -> Function: ...

    @overload
    def capture_method(
        self,
        method: None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Callable[[Function], Function]: ...

    def capture_method(
        self,
        method: Function | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Function | Callable[[Function], Function]:
        return _unchanged if method is None else method

    def put_annotation(self, key: str, value: str | float | bool) -> None:
        """Nothing to annotate: no segment is recorded."""

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        """Nothing to attach: no segment is recorded."""


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Powertools' rule: on unless POWERTOOLS_TRACE_DISABLED is a true value.

    Outside Lambda Powertools' Tracer disables itself (and still loads X-Ray);
    only the variable decides which tracer hookline builds.
    """
    return not strtobool(environ.get("POWERTOOLS_TRACE_DISABLED") or "false")


def build_tracer(service: str) -> Tracer | DisabledTracer:
    if not tracing_enabled():
        return DisabledTracer(service)
    # Imported only here: importing Powertools' tracer module is cheap, building one is not.
    from aws_lambda_powertools.tracing import Tracer

    return Tracer(service=service)


logger = Logger(service=SERVICE_NAME, log_uncaught_exceptions=True)
tracer = build_tracer(SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)

# Serializes count()'s breakdowns; holds no state between them (the service is set).
_BREAKDOWNS = AmazonCloudWatchEMFProvider(
    namespace=METRICS_NAMESPACE,
    service=SERVICE_NAME,
    dimension_set={"service": SERVICE_NAME},
)

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
    # An empty value is left out, as Powertools' add_dimension does.
    breakdown = {"service": SERVICE_NAME, **metrics.default_dimensions}
    breakdown.update((key, item) for key, item in dimensions.items() if item.strip())
    # Powertools' own EMF serializer, as single_metric uses, without building and
    # validating a metrics object per count: that cost a warm request as much as
    # the rest of its metrics and logging together.
    blob = _BREAKDOWNS.serialize_metric_set(
        metrics={name: {"Unit": MetricUnit.Count.value, "Value": [float(value)]}},
        dimensions=breakdown,
        metadata={},
    )
    print(json.dumps(blob, separators=(",", ":")))


def gauge(name: Metric, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    """A state as a number (e.g. BreakerOpen, 0 or 1): alarms watch its Maximum."""
    metrics.add_metric(name=name, unit=unit, value=value)
