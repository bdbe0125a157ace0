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
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricResolution, Metrics, MetricUnit
from aws_lambda_powertools.metrics.exceptions import SchemaValidationError
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_DIMENSIONS
from aws_lambda_powertools.shared.functions import strtobool

from hookline.metric_names import Metric

DEFAULT_SERVICE_NAME = "hookline"
DEFAULT_METRICS_NAMESPACE = "Hookline"
# Explicit values, read here: Powertools would default to "service_undefined" and no namespace.
SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE_NAME
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE

if TYPE_CHECKING:
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.types import CloudWatchEMFOutput
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


class BreakdownEMFProvider(AmazonCloudWatchEMFProvider):
    """Powertools' EMF provider, whose line also carries count()'s breakdowns.

    An EMF record may hold several directives over one set of root values, so a
    metric counted per provider goes out from one line twice: in Powertools' own
    directive with the service alone (the total, unchanged) and in a second
    directive with (service, provider). One line instead of a line per count:
    the second line cost a warm receiver request about 12 us (bench/receiver.py).

    A directive publishes all of a metric's values in the line under one value
    of each root key, so a breakdown joins the line only while every value of
    its metric carries that same breakdown and no root key holds another value
    (another provider, a dimension or metadata of that name). Otherwise it is
    printed at once as its own record, as every breakdown once was; one that had
    joined and stops fitting is printed so too. Either way CloudWatch receives
    the same series and the same samples.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Metric name -> the breakdown every value of it in the current line carries.
        self._joined: dict[str, dict[str, str]] = {}
        # The root values the joined breakdowns rely on.
        self._root: dict[str, str] = {}
        # Names whose breakdowns are printed on their own until the line is flushed.
        self._apart: set[str] = set()

    def add_count(self, name: str, value: float, breakdown: dict[str, str]) -> None:
        """Add `value` to the line's total of `name`, and once more under `breakdown`."""
        self._part_holding(name)  # a metric named like a root key takes that key
        if self._joins(name, breakdown):
            self._joined[name] = breakdown
            self._root.update(breakdown)
        else:
            self._apart.add(name)
            self._print_apart(name, [float(value)], breakdown)
        super().add_metric(name=name, unit=MetricUnit.Count, value=value)
        self._after_add()

    def add_metric(
        self,
        name: str,
        unit: MetricUnit | str,
        value: float,
        resolution: MetricResolution | int = 60,
    ) -> None:
        # A value without a breakdown: the line can no longer carry the name's breakdown.
        self._part(name)
        self._part_holding(name)  # a metric named like a root key takes that key
        super().add_metric(name=name, unit=unit, value=value, resolution=resolution)
        self._after_add()

    def add_dimension(self, name: str, value: str) -> None:
        super().add_dimension(name=name, value=value)
        self._part_holding(name, keep=self.dimension_set.get(name))

    def add_dimensions(self, **dimensions: str) -> None:
        super().add_dimensions(**dimensions)
        for name in dimensions:
            self._part_holding(name, keep=self._held(name))

    def add_metadata(self, key: str, value: Any) -> None:
        super().add_metadata(key=key, value=value)
        self._part_holding(str(key))

    def clear_metrics(self) -> None:
        # First: clearing re-adds the default dimensions, which must not part anything.
        self._forget()
        super().clear_metrics()

    def serialize_metric_set(
        self,
        metrics: dict[str, Any] | None = None,
        dimensions: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CloudWatchEMFOutput:
        record = super().serialize_metric_set(
            metrics=metrics, dimensions=dimensions, metadata=metadata
        )
        if self._joined and (metrics is None or metrics is self.metric_set):
            self._add_breakdowns(record)
        return record

    def _add_breakdowns(self, record: CloudWatchEMFOutput) -> None:
        directives = record["_aws"]["CloudWatchMetrics"]
        total = directives[0]
        groups: dict[tuple[tuple[str, str], ...], list[Any]] = {}
        for definition in total["Metrics"]:
            breakdown = self._joined.get(definition["Name"])
            if breakdown is not None:
                groups.setdefault(tuple(breakdown.items()), []).append(definition)
        for pairs, members in groups.items():
            # Its own directive, so the total's stays [["service"]] (what alarms and readers match).
            directives.append(
                {
                    "Namespace": total["Namespace"],
                    "Dimensions": [[key for key, _ in pairs]],
                    "Metrics": members,
                }
            )
            # Equal to any value the record already holds under these keys (see _joins).
            record.update(pairs)  # type: ignore[typeddict-item]

    def _joins(self, name: str, breakdown: dict[str, str]) -> bool:
        if name in self._apart:
            return False
        joined = self._joined.get(name)
        if joined is not None:
            if joined == breakdown:
                return True
            self._part(name)
            return False
        if name in self.metric_set:  # counted already, without this breakdown
            return False
        for key, item in breakdown.items():
            if key == name or key in self.metric_set or key in self.metadata_set:
                return False
            held = self._root.get(key)
            if held is None:
                held = self._held(key)
            if held is not None and held != item:
                return False
        return True

    def _held(self, key: str) -> str | None:
        """The value Powertools' own serialization puts at the root under `key`, if any."""
        for extra in reversed(self.dimension_sets):
            if key in extra:
                return extra[key]
        if key in self.dimension_set:
            return str(self.dimension_set[key])
        if key == "service" and self.service:
            return str(self.service)
        return None

    def _part(self, name: str) -> None:
        """Print the joined breakdown of `name` on its own; its next counts follow it."""
        breakdown = self._joined.pop(name, None)
        if breakdown is None:
            return
        self._apart.add(name)
        self._root = {key: item for joined in self._joined.values() for key, item in joined.items()}
        values = self.metric_set.get(name, {}).get("Value", [])
        if values:
            self._print_apart(name, list(values), breakdown)

    def _part_holding(self, key: str, keep: str | None = None) -> None:
        """Part each joined breakdown that puts `key` at the root with a value other than `keep`."""
        if key not in self._root:
            return
        for name, breakdown in list(self._joined.items()):
            if key in breakdown and breakdown[key] != keep:
                self._part(name)

    def _after_add(self) -> None:
        # Powertools printed and emptied a full line (100 metrics or values): its
        # joined breakdowns went with it.
        if not self.metric_set:
            self._forget()

    def _forget(self) -> None:
        self._joined.clear()
        self._root.clear()
        self._apart.clear()

    def _print_apart(self, name: str, values: list[float], breakdown: dict[str, str]) -> None:
        if is_metrics_disabled():
            return
        record = _BREAKDOWNS.serialize_metric_set(
            metrics={name: {"Unit": MetricUnit.Count.value, "Value": values}},
            dimensions=breakdown,
            metadata={},
        )
        print(json.dumps(record, separators=(",", ":")))


# Serializes the breakdowns printed apart; holds no state between them (the service is set).
_BREAKDOWNS = AmazonCloudWatchEMFProvider(
    namespace=METRICS_NAMESPACE,
    service=SERVICE_NAME,
    dimension_set={"service": SERVICE_NAME},
)

# What a JSON text can begin with, after JSON's own whitespace: an object, an array,
# a string, a number, true, false, null, and Python's NaN and Infinity.
_JSON_STARTS = frozenset('{["-0123456789tfnNI')
_JSON_WHITESPACE = " \t\n\r"


class HooklineFormatter(LambdaPowertoolsFormatter):
    """Powertools' formatter, without a doomed JSON parse of each plain-text message.

    Powertools parses every str message with json_deserializer, so a message that
    is JSON text is logged as the value it holds. One whose first character (past
    JSON whitespace) begins no JSON text, as "webhook queued", fails that parse
    whatever follows, and the failure (an exception built and caught) cost a warm
    receiver request about 3 us of its 30 us log line: such a message is kept as
    it is, unparsed. Everything else goes through Powertools as before, so the
    output is the same.
    """

    def _extract_log_message(
        self, log_record: logging.LogRecord
    ) -> dict[str, Any] | str | bool | Iterable[Any]:
        message = log_record.msg
        if (
            type(message) is str
            and not log_record.args
            and self.json_deserializer is json.loads
            and message.lstrip(_JSON_WHITESPACE)[:1] not in _JSON_STARTS
        ):
            return message
        return super()._extract_log_message(log_record)


logger = Logger(
    service=SERVICE_NAME, log_uncaught_exceptions=True, logger_formatter=HooklineFormatter()
)
tracer = build_tracer(SERVICE_NAME)
# Powertools' Metrics keeps its sets in class attributes, shared by every Metrics
# in the process: the provider is given those very sets, as Metrics gives its own.
_EMF = BreakdownEMFProvider(
    namespace=METRICS_NAMESPACE,
    service=SERVICE_NAME,
    metric_set=Metrics._metrics,
    dimension_set=Metrics._dimensions,
    metadata_set=Metrics._metadata,
    default_dimensions=Metrics._default_dimensions,
)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME, provider=_EMF)

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
    only the service dimension, and the breakdown (per provider, per reason)
    under the same name with the service and the given dimensions, for
    dashboards. Both leave in the invocation's one metrics line when they can
    (BreakdownEMFProvider).
    """
    # An empty value is left out, as Powertools' add_dimension does.
    given = {key: item for key, item in dimensions.items() if item.strip()}
    if not given:
        # Nothing to break down by: the total alone (a breakdown equal to it would count twice).
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    # The service given here, not read again from the environment by Powertools: the
    # breakdown carries the same service as the total (dashboards search on it).
    breakdown = {"service": SERVICE_NAME, **metrics.default_dimensions, **given}
    if len(breakdown) > MAX_DIMENSIONS:
        raise SchemaValidationError(f"Maximum dimensions ({MAX_DIMENSIONS}) exceeded")
    _EMF.add_count(name, value, breakdown)


def gauge(name: Metric, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    """A state as a number (e.g. BreakerOpen, 0 or 1): alarms watch its Maximum."""
    metrics.add_metric(name=name, unit=unit, value=value)
