"""ReceiverFunction: API Gateway HTTP API → verified envelope on the FIFO queue."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hookline.observability import logger, metrics, tracer
from hookline.receiver.api import app


@logger.inject_lambda_context(clear_state=True)
# Answers stay out of X-Ray, as for every hookline function (the reconciler's carry payloads).
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
