"""EMF metric records from the functions' output → CloudWatch (moto), as Lambda's
log pipeline extracts them in AWS. Local metrics can then be queried with the
same `aws cloudwatch` commands the runbook uses."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# PutMetricData's limit on data points per call.
_BATCH = 1000
# Data points wait this long for company: one PutMetricData a second, not one per
# invocation (each call costs moto a few milliseconds of a shared CPU).
FLUSH_SECONDS = 1.0


def metric_data(record: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, MetricDatum) pairs from one Embedded Metric Format record."""
    meta = record.get("_aws")
    if not isinstance(meta, Mapping):
        return []
    timestamp = datetime.fromtimestamp(int(meta.get("Timestamp", 0)) / 1000, UTC)
    data: list[tuple[str, dict[str, Any]]] = []
    for directive in meta.get("CloudWatchMetrics", []):
        namespace = str(directive.get("Namespace", ""))
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics", []):
            name = metric.get("Name")
            value = record.get(name)
            values = value if isinstance(value, list) else [value]
            numbers = [float(v) for v in values if isinstance(v, int | float)]
            if not name or not numbers:
                continue
            for dimension_names in dimension_sets:
                data.append(
                    (
                        namespace,
                        {
                            "MetricName": name,
                            "Dimensions": [
                                {"Name": d, "Value": str(record[d])}
                                for d in dimension_names
                                if d in record
                            ],
                            "Values": numbers,
                            "Unit": metric.get("Unit", "None"),
                            "Timestamp": timestamp,
                        },
                    )
                )
    return data


class MetricsForwarder:
    """Puts metric data on a background thread, so a slow endpoint never stalls logs."""

    def __init__(self, cloudwatch: Any) -> None:
        self.cloudwatch = cloudwatch
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def add(self, record: Mapping[str, Any]) -> None:
        for item in metric_data(record):
            self._queue.put(item)

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            window_ends = time.monotonic() + FLUSH_SECONDS
            while len(batch) < _BATCH:
                try:
                    item = self._queue.get(timeout=max(0.0, window_ends - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._put(batch)
                    return
                batch.append(item)
            self._put(batch)

    def _put(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, datum in batch:
            by_namespace.setdefault(namespace, []).append(datum)
        for namespace, data in by_namespace.items():
            try:
                self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)
            except (BotoCoreError, ClientError):
                # Metrics are a convenience locally; the terminal still shows them.
                self.failures += 1
