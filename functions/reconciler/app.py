"""ReconcilerFunction: the scheduled run, and operator actions on a direct invoke."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hookline.observability import logger, metrics, tracer
from hookline.reconcile.build import reconciler


@logger.inject_lambda_context(clear_state=True)
# Answers stay out of X-Ray: the `parked` action answers with a payload, customer data included.
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return reconciler().handle(event, context)
