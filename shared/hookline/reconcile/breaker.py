"""The consumer's circuit breaker: stop receiving while PostgreSQL is down.

When the reconciler's own health check fails and the consumer has counted at
least `threshold` database failures in the last window, the breaker opens: the
consumer's SQS event source mapping is disabled, so events wait in the queue
instead of spending receives on their way to the DLQ. When the health check
passes again, the breaker closes and the mapping is enabled.

Its state is an item in the idempotency table (DynamoDB stays up when
PostgreSQL does not). The breaker re-enables only a mapping it disabled itself,
never one an operator turned off.

It reads DatabaseFailures where the consumer counts it: the namespace and the
service dimension hookline.observability emits with (POWERTOOLS_METRICS_NAMESPACE
and POWERTOOLS_SERVICE_NAME, the same for every function of a stack), so
another stack's failures in the same namespace never open this one's breaker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hookline.metric_names import Metric
from hookline.observability import (
    DATABASE_FAILURES_METRIC,
    METRICS_NAMESPACE,
    SERVICE_NAME,
    count,
    gauge,
    logger,
)

STATE_KEY = "hookline#circuit-breaker"


class CircuitBreaker:
    def __init__(
        self,
        *,
        lambda_client: Any,
        cloudwatch: Any,
        dynamodb: Any,
        table: str,
        consumer_function: str,
        queue_arn: str,
        namespace: str = METRICS_NAMESPACE,
        service: str = SERVICE_NAME,
        threshold: int,
        window: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.lambda_client = lambda_client
        self.cloudwatch = cloudwatch
        self.dynamodb = dynamodb
        self.table = table
        self.consumer_function = consumer_function
        self.queue_arn = queue_arn
        self.namespace = namespace
        self.service = service
        self.threshold = threshold
        self.window = window
        self.clock = clock

    def _mapping(self) -> dict[str, Any] | None:
        mappings = self.lambda_client.list_event_source_mappings(
            FunctionName=self.consumer_function, EventSourceArn=self.queue_arn
        )["EventSourceMappings"]
        return mappings[0] if mappings else None

    def _is_open(self) -> bool:
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"id": {"S": STATE_KEY}}, ConsistentRead=True
        )
        return "Item" in item

    def _database_failures(self) -> int:
        now = self.clock()
        answer = self.cloudwatch.get_metric_statistics(
            Namespace=self.namespace,
            MetricName=DATABASE_FAILURES_METRIC,
            # The total only (the consumer's count() emits it with the service alone).
            Dimensions=[{"Name": "service", "Value": self.service}],
            # One-minute periods summed: a data point from this very minute counts too.
            StartTime=now - self.window,
            EndTime=now + timedelta(minutes=1),
            Period=60,
            Statistics=["Sum"],
        )
        return int(sum(point["Sum"] for point in answer.get("Datapoints", [])))

    def database_down(self) -> str:
        """The health check failed: open the breaker if the consumer is failing too."""
        try:
            if self._is_open():
                gauge(Metric.BREAKER_OPEN, 1)
                return "open"
            failures = self._database_failures()
            mapping = self._mapping()
            if failures < self.threshold or mapping is None:
                gauge(Metric.BREAKER_OPEN, 0)
                return "closed"
            self.dynamodb.put_item(
                TableName=self.table,
                Item={
                    "id": {"S": STATE_KEY},
                    "opened_at": {"S": self.clock().isoformat()},
                    "mapping": {"S": mapping["UUID"]},
                },
            )
            self.lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        except (BotoCoreError, ClientError) as error:
            logger.error("circuit breaker could not act", extra={"error": str(error)})
            count(Metric.BREAKER_ERRORS)
            return "unknown"
        logger.warning(
            "circuit breaker opened: consumer paused while the database is down",
            extra={"database_failures": failures, "mapping": mapping["UUID"]},
        )
        count(Metric.BREAKER_OPENED)
        gauge(Metric.BREAKER_OPEN, 1)
        return "opened"

    def database_up(self) -> str:
        """The health check passed: close the breaker if it is open."""
        try:
            if not self._is_open():
                gauge(Metric.BREAKER_OPEN, 0)
                return "closed"
            mapping = self._mapping()
            if mapping is not None:
                self.lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
            self.dynamodb.delete_item(TableName=self.table, Key={"id": {"S": STATE_KEY}})
        except (BotoCoreError, ClientError) as error:
            logger.error("circuit breaker could not act", extra={"error": str(error)})
            count(Metric.BREAKER_ERRORS)
            return "unknown"
        logger.warning("circuit breaker closed: consumer resumed")
        count(Metric.BREAKER_CLOSED)
        gauge(Metric.BREAKER_OPEN, 0)
        return "closed_now"
