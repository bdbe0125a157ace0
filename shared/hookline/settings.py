"""Typed settings, one model per function, read from the environment on first use.

Plain pydantic models rather than pydantic-settings: the receiver's cold start
pays for every import, and these few variables need no more than this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hookline.errors import ConfigurationError
from hookline.schema import DEFAULT_SCHEMA, schema_name


class _EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        source = os.environ if environ is None else environ
        values = {name: source[name.upper()] for name in cls.model_fields if name.upper() in source}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            # Name the variables, never their values.
            names = sorted({str(e["loc"][0]).upper() for e in error.errors() if e["loc"]})
            # Model-level rules carry no location; their messages name variables only.
            rules = [str(e["msg"]) for e in error.errors() if not e["loc"]]
            raise ConfigurationError(
                f"invalid or missing environment: {', '.join(names + rules)}"
            ) from None


class ReceiverSettings(_EnvSettings):
    queue_url: str = Field(min_length=1)
    secrets_name: str = Field(min_length=1)
    square_notification_url: str | None = None
    signature_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    mercadopago_tolerance_seconds: int = Field(default=86_400, ge=1, le=604_800)
    max_body_bytes: int = Field(default=1_048_576, ge=1, le=1_048_576)
    # HMAC senders described by configuration, as JSON (hookline.providers.generic).
    hookline_generic_providers: str = "{}"


class DatabaseSettings(_EnvSettings):
    """Where PostgreSQL is: DATABASE_URL, else the RDS-style secret DATABASE_SECRET_NAME."""

    database_url: str | None = None
    database_secret_name: str | None = None
    database_connect_timeout_seconds: int = Field(default=3, ge=1, le=30)
    database_statement_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    # The one PostgreSQL schema holding everything hookline creates.
    database_schema: str = DEFAULT_SCHEMA
    # What the secret lacks: an RDS-managed master-user secret holds only username and password.
    database_host: str | None = None
    database_port: int | None = Field(default=None, ge=1, le=65_535)
    database_name: str | None = None

    @field_validator(
        "database_url",
        "database_secret_name",
        "database_host",
        "database_port",
        "database_name",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # template.yaml passes "" for the option a deployment does not use.
        return None if value == "" else value

    @field_validator("database_schema")
    @classmethod
    def _valid_schema(cls, value: str) -> str:
        try:
            return schema_name(value)
        except ConfigurationError as error:
            raise ValueError(str(error)) from None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.database_url is None and self.database_secret_name is None:
            raise ValueError("set DATABASE_URL or DATABASE_SECRET_NAME")
        return self


class ConsumerSettings(DatabaseSettings):
    queue_url: str = Field(min_length=1)
    secrets_name: str = Field(min_length=1)
    idempotency_table: str = Field(min_length=1)
    orphan_deadline_hours: int = Field(default=72, ge=1)
    # The event's own failures (not a dependency's) after which the consumer parks it.
    max_permanent_failures: int = Field(default=3, ge=1, le=100)
    # Backoff of a transiently failed message: base * 2^(receives - 1), capped.
    retry_base_seconds: int = Field(default=30, ge=0, le=43_200)
    retry_max_seconds: int = Field(default=900, ge=0, le=43_200)
    # Backoff of the event's own failures: permanent * 2^(receives - 1), capped.
    retry_permanent_seconds: int = Field(default=10, ge=0, le=43_200)
    # Thin providers' APIs (`{PROVIDER}_API_URL`); empty: the provider's production URL.
    mercadopago_api_url: str = ""
    esewa_api_url: str = ""
    khalti_api_url: str = ""
    mollie_api_url: str = ""
    # How the Adyen merchant account captures: only a CAPTURE is money when manual.
    adyen_capture: Literal["immediate", "manual"] = "immediate"
    # Comma-separated modules that register a team's own handlers.
    hookline_handler_modules: str = ""

    def api_urls(self) -> dict[str, str]:
        """Provider name → its API's URL, where set (hookline.clients.provider_apis)."""
        return {
            name.removesuffix("_api_url"): value
            for name, value in self.model_dump().items()
            if name.endswith("_api_url") and value
        }


class ReconcilerSettings(DatabaseSettings):
    queue_url: str = Field(min_length=1)
    dlq_url: str = Field(min_length=1)
    secrets_name: str = Field(min_length=1)
    max_redrives: int = Field(default=3, ge=0, le=100)
    # The consumer's; a dead letter whose event failed this often on its own is parked.
    max_permanent_failures: int = Field(default=3, ge=1, le=100)
    orphan_deadline_hours: int = Field(default=72, ge=1)
    retention_days: int = Field(default=30, ge=1)
    # Missed-event recovery: how far back a first run lists, and where the APIs are.
    recovery_lookback_hours: int = Field(default=24, ge=1, le=720)
    # The consumer's circuit breaker (reconcile/breaker.py); empty names turn it off.
    consumer_function_name: str = ""
    events_queue_arn: str = ""
    idempotency_table: str = ""
    breaker_threshold: int = Field(default=10, ge=1)
    powertools_metrics_namespace: str = "Hookline"
    stripe_api_url: str = "https://api.stripe.com"
    square_api_url: str = "https://connect.squareup.com"
    hookline_handler_modules: str = ""
