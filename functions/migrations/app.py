"""MigrationsFunction: pending migrations on every deploy (the `Migrations` custom
resource) and on `hookline migrate --stack` (a direct invoke)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hookline.deploy_migrations import migrations_function
from hookline.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
# Answers stay out of X-Ray, as for every hookline function.
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    return migrations_function().handle(event, context)
