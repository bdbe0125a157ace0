"""HTTP routes of the receiver (API Gateway HTTP API, payload format 2.0)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from hookline.aws import CLIENT_CONFIG
from hookline.errors import (
    ConfigurationError,
    HooklineError,
    InvalidSecret,
    MalformedEvent,
    ServiceUnavailable,
)
from hookline.metric_names import Metric
from hookline.observability import count, logger, tracer
from hookline.providers import PROVIDER_NAMES, WebhookRequest, build_registry
from hookline.providers.generic import parse_specs
from hookline.queue import EventQueue
from hookline.receiver.intake import Intake
from hookline.secrets import WebhookSecrets
from hookline.settings import ReceiverSettings

RETRY_AFTER_SECONDS = "30"
# /health is public: its checks are answered from memory this long, so a flood costs no AWS calls.
HEALTH_CACHE_SECONDS = 5.0

app = APIGatewayHttpResolver()


def build_intake(settings: ReceiverSettings) -> Intake:
    secrets_client = boto3.client("secretsmanager", config=CLIENT_CONFIG)
    generic = parse_specs(settings.hookline_generic_providers)
    return Intake(
        providers=build_registry(
            square_notification_url=settings.square_notification_url,
            mercadopago_tolerance_seconds=settings.mercadopago_tolerance_seconds,
            generic=generic,
        ),
        secrets=WebhookSecrets(
            settings.secrets_name,
            SecretsProvider(boto3_client=secrets_client),
            providers=(*PROVIDER_NAMES, *generic),
        ),
        queue=EventQueue(settings.queue_url, boto3.client("sqs", config=CLIENT_CONFIG)),
        tolerance_seconds=settings.signature_tolerance_seconds,
        max_body_bytes=settings.max_body_bytes,
    )


@cache
def intake() -> Intake:
    """Built on first use and kept for the container's life (clients, secret cache)."""
    return build_intake(ReceiverSettings.from_env())


def webhook_request(event: APIGatewayProxyEventV2) -> WebhookRequest:
    # The event's own dict, read as Powertools' properties read it (a missing
    # required key is a KeyError either way), without a wrapper object per access.
    data = event.raw_event
    raw_body = data.get("body") or ""
    if data.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedEvent("body is not valid base64") from None
    else:
        # surrogatepass: a lone surrogate must reach the signature check as bytes, not crash.
        body = raw_body.encode("utf-8", "surrogatepass")
    query = data["rawQueryString"]
    url = f"https://{data['requestContext']['domainName']}{data['rawPath']}"
    return WebhookRequest(
        body=body,
        # Powertools' `headers` would build a case-insensitive copy per access.
        headers={name.lower(): value for name, value in (data.get("headers") or {}).items()},
        query=data.get("queryStringParameters") or {},
        url=f"{url}?{query}" if query else url,
    )


def _json(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(payload),
        headers=headers,
    )


@app.post("/webhooks/<provider>")
def receive_webhook(provider: str) -> Response[str]:
    accepted = intake().accept(provider, webhook_request(app.current_event))
    envelope = accepted.envelope
    logger.set_correlation_id(envelope.event_id)
    tracer.put_annotation(key="provider", value=provider)
    logger.info(
        "webhook queued",
        extra={
            "provider": provider,
            "event_type": envelope.event_type,
            "object_id": envelope.object_id,
            "message_id": accepted.message_id,
        },
    )
    count(Metric.WEBHOOKS_ACCEPTED, provider=provider)
    return _json(200, {"received": True, "event_id": envelope.event_id})


def _dependency_checks(dependencies: Intake) -> dict[str, str]:
    """Each dependency's state: "ok", "unavailable", or "invalid: <providers>" for secrets."""
    checks: dict[str, str] = {}
    for name, check in (
        ("secrets", dependencies.secrets.check),
        ("queue", dependencies.queue.check),
    ):
        try:
            check()
        except InvalidSecret as error:
            # Names the providers and what is wrong, never a value.
            logger.error("health check failed", extra={"check": name, "detail": str(error)})
            checks[name] = f"invalid: {', '.join(error.providers)}"
        except ServiceUnavailable:
            logger.warning("health check failed", extra={"check": name}, exc_info=True)
            checks[name] = "unavailable"
        else:
            checks[name] = "ok"
    return checks


@dataclass
class HealthCache:
    """The last checks of one Intake, answered again until `max_age` has passed."""

    max_age: float = HEALTH_CACHE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _checked: Intake | None = None
    _checks: dict[str, str] = field(default_factory=dict)
    _expires: float = 0.0

    def checks(self, dependencies: Intake) -> dict[str, str]:
        now = self.clock()
        # Another Intake (a rebuilt container's) has other dependencies: check those.
        if dependencies is not self._checked or now >= self._expires:
            self._checks = _dependency_checks(dependencies)
            self._checked, self._expires = dependencies, now + self.max_age
        return dict(self._checks)


health_cache = HealthCache()


@app.get("/health")
def health() -> Response[str]:
    try:
        dependencies = intake()
    except ConfigurationError:
        logger.exception("receiver is misconfigured")
        checks = {"configuration": "invalid", "secrets": "unknown", "queue": "unknown"}
    else:
        checks = health_cache.checks(dependencies)
    healthy = all(state == "ok" for state in checks.values())
    count(Metric.HEALTH_CHECKS, status="ok" if healthy else "unavailable")
    return _json(
        200 if healthy else 503, {"status": "ok" if healthy else "unavailable", "checks": checks}
    )


def _known_provider(name: str | None) -> str | None:
    """The path's provider, only when it is one we know: it becomes a metric dimension."""
    if name is None:
        return None
    try:
        return name if name in intake().providers else None
    except ConfigurationError:
        return None


def answer_error(error: HooklineError) -> Response[str]:
    """The one place an error becomes an answer, a log line and a metric, as
    hookline.errors' table says for its class."""
    if error.http_status >= 500 and not error.transient:
        raise error  # an unmapped HooklineError is a bug: let it surface as a Lambda error
    # An unsigned provider's route is its own (`/webhooks/mollie`): no path parameter.
    path_provider = (app.current_event.path_parameters or {}).get("provider") or (
        app.current_event.raw_event.get("rawPath", "").rpartition("/")[2]
    )
    provider = _known_provider(path_provider) or "unknown"
    log = logger.error if error.transient else logger.warning
    log(error.log_message, extra={"provider": provider, **error.log_fields()})
    if error.rejection is not None:
        count(Metric.WEBHOOKS_REJECTED, reason=error.rejection)
    if error.metric is not None:
        count(error.metric, provider=provider)
    # A transient error's provider retries; Retry-After says when to.
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if error.transient else None
    return _json(error.http_status, error.answer(), headers=headers)


# Registered by call: the decorator form is untyped in Powertools.
app.exception_handler(HooklineError)(answer_error)


@app.not_found
def not_found(_: Exception) -> Response[str]:
    count(Metric.ROUTES_NOT_FOUND)
    return _json(404, {"error": "not_found", "message": "no such route"})
