"""Typed settings, one model per function, read from the environment on first use.

Plain pydantic models rather than pydantic-settings: the receiver's cold start
pays for every import, and these few variables need no more than this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hookline.errors import ConfigurationError


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
            raise ConfigurationError(
                f"invalid or missing environment: {', '.join(names)}"
            ) from None


class ReceiverSettings(_EnvSettings):
    queue_url: str = Field(min_length=1)
    secrets_name: str = Field(min_length=1)
    square_notification_url: str | None = None
    signature_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    max_body_bytes: int = Field(default=1_048_576, ge=1, le=1_048_576)
