"""How long the oldest event has waited in EventsQueue.

An event still waiting there has no ledger row yet: recovery must not list it
as missed. SQS publishes `ApproximateAgeOfOldestMessage` to CloudWatch each
minute; the largest value of the last few minutes is the lag. When CloudWatch
cannot be read, the answer is a conservative lag, not 0: recovering a little
later is harmless, re-enqueueing a backlog as "missed" is not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from hookline.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

METRIC = "ApproximateAgeOfOldestMessage"
WINDOW = timedelta(minutes=5)
# Assumed when CloudWatch does not answer.
CONSERVATIVE_LAG = timedelta(hours=1)


class QueueLag:
    """Callable: the age of the oldest message in the queue (Maximum over WINDOW)."""

    def __init__(
        self,
        cloudwatch: CloudWatchClient,
        queue_name: str,
        *,
        window: timedelta = WINDOW,
        conservative: timedelta = CONSERVATIVE_LAG,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cloudwatch = cloudwatch
        self.queue_name = queue_name
        self.window = window
        self.conservative = conservative
        self.clock = clock

    @classmethod
    def of_queue_url(cls, cloudwatch: CloudWatchClient, queue_url: str) -> QueueLag:
        """The queue's name is the last segment of its URL (CloudWatch's QueueName)."""
        return cls(cloudwatch, queue_url.rstrip("/").rsplit("/", 1)[-1])

    def __call__(self) -> timedelta:
        now = self.clock()
        try:
            answer = self.cloudwatch.get_metric_statistics(
                Namespace="AWS/SQS",
                MetricName=METRIC,
                Dimensions=[{"Name": "QueueName", "Value": self.queue_name}],
                # One-minute periods; the current minute's data point counts too.
                StartTime=now - self.window,
                EndTime=now + timedelta(minutes=1),
                Period=60,
                Statistics=["Maximum"],
            )
        except (BotoCoreError, ClientError) as error:
            logger.warning(
                "queue age unknown: recovery assumes a conservative lag",
                extra={
                    "queue": self.queue_name,
                    "error": type(error).__name__,
                    "lag_seconds": self.conservative.total_seconds(),
                },
            )
            return self.conservative
        ages = [point["Maximum"] for point in answer.get("Datapoints", []) if "Maximum" in point]
        return timedelta(seconds=max([0.0, *ages]))
