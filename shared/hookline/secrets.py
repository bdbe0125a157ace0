"""The webhook secret: one Secrets Manager secret, `{"<provider>": ["secret", ...]}`.

Read through Powertools Parameters with a short cache, so a rotation is picked
up within `max_age` seconds and a Secrets Manager blip inside that window does
not turn into refused webhooks. Values are never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import (
    GetParameterError,
    TransformParameterError,
)

from hookline.errors import ConfigurationError, ProviderDisabled, SecretsUnavailable

DEFAULT_MAX_AGE_SECONDS = 60


class WebhookSecrets:
    def __init__(
        self,
        secret_name: str,
        provider: SecretsProvider | None = None,
        max_age: int = DEFAULT_MAX_AGE_SECONDS,
    ) -> None:
        self._secret_name = secret_name
        self._provider = provider or SecretsProvider()
        self._max_age = max_age

    def _document(self) -> dict[str, Any]:
        try:
            document = self._provider.get(
                self._secret_name, max_age=self._max_age, transform="json"
            )
        except (GetParameterError, TransformParameterError) as error:
            raise SecretsUnavailable(
                f"cannot read the webhook secret: {type(error).__name__}"
            ) from None
        if not isinstance(document, dict):
            raise SecretsUnavailable("the webhook secret is not a JSON object")
        return document

    def for_provider(self, provider: str) -> tuple[str, ...]:
        """Every accepted secret for `provider`, newest first; ProviderDisabled if none."""
        entry = self._document().get(provider)
        if entry is None or entry == []:
            raise ProviderDisabled(provider)
        if not isinstance(entry, list) or not all(isinstance(s, str) and s for s in entry):
            raise SecretsUnavailable(f"the secret entry for {provider} is not a list of strings")
        return tuple(entry)

    def api_credential(self, key: str) -> str:
        """A provider API credential kept in the same secret (e.g. `mercadopago_access_token`)."""
        value = self._document().get(key)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"the webhook secret has no {key}")
        return value

    def check(self) -> None:
        """Raise SecretsUnavailable unless the secret can be read (for /health)."""
        self._document()
