"""The webhook secret: one Secrets Manager secret, `{"<provider>": ["secret", ...]}`.

Read through Powertools Parameters with a short cache, so a rotation is picked
up within `max_age` seconds and a Secrets Manager blip inside that window does
not turn into refused webhooks. A failed read is remembered for a few seconds
too, so a flood of requests while the secret is unreadable costs one call per
window, not one per request. Values are never logged.

One rule decides what a usable entry is, for the receiver, `/health` and
`hookline local` alike (`provider_secrets`): a provider with no entry is
disabled; an entry that is present must be a non-empty JSON array of secrets,
none empty or blank, and for svix/standard each the base64 of a non-empty key
(`whsec_` and padding optional, as their SDKs accept). Anything else (a bare
string, `[]`, `null`, `""`, `" "`, `whsec_`) is InvalidSecret: a configuration
error, never an HMAC keyed with nothing. Other keys (API credentials such as
`stripe_api_key`) are strings and are not webhook secrets.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import (
    GetParameterError,
    TransformParameterError,
)

from hookline.errors import ConfigurationError, InvalidSecret, ProviderDisabled, SecretsUnavailable
from hookline.providers import PROVIDER_NAMES
from hookline.providers.adyen import hmac_key
from hookline.providers.svix import signing_key

DEFAULT_MAX_AGE_SECONDS = 60
# How long a failed read is answered from memory (503) before Secrets Manager is asked again.
FAILED_READ_SECONDS = 5.0

# Providers whose secrets encode their key: decoding one proves it usable.
_KEY_DECODERS: Mapping[str, Callable[[str], bytes]] = {
    "svix": signing_key,
    "standard": signing_key,
    "adyen": hmac_key,
}
# Control characters (a paste mistake) and lone surrogates (no HMAC key) in a secret.
_UNUSABLE_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def provider_secrets(document: Mapping[str, object], provider: str) -> tuple[str, ...]:
    """Every accepted secret for `provider`, newest first.

    ProviderDisabled when the document has no entry for it; InvalidSecret when
    the entry is there but unusable.
    """
    if provider not in document:
        raise ProviderDisabled(provider)
    entry = document[provider]
    if not isinstance(entry, list) or not entry:
        raise InvalidSecret(
            {provider: "must be a non-empty JSON array of secrets (remove it to disable)"}
        )
    decode = _KEY_DECODERS.get(provider)
    for position, secret in enumerate(entry, 1):
        if not isinstance(secret, str) or not secret.strip():
            raise InvalidSecret({provider: f"secret {position} is empty, blank or not a string"})
        if secret != secret.strip(" \t\r\n"):
            # Pasted with a newline: every delivery would fail its HMAC while /health said ok.
            raise InvalidSecret({provider: f"secret {position} has whitespace around it"})
        if _UNUSABLE_CHARACTER.search(secret):
            # A lone surrogate cannot key an HMAC; a control character is a paste
            # mistake. Any other text (a GitHub secret may hold an emoji) is a key.
            raise InvalidSecret({provider: f"secret {position} holds a control character"})
        if decode is not None:
            try:
                decode(secret)
            except ConfigurationError as error:
                raise InvalidSecret({provider: f"secret {position} is {error}"}) from None
    return tuple(entry)


def check_document(
    document: Mapping[str, object], providers: Sequence[str] = PROVIDER_NAMES
) -> None:
    """InvalidSecret naming every provider whose entry is unusable; missing ones are disabled."""
    problems: dict[str, str] = {}
    for provider in providers:
        try:
            provider_secrets(document, provider)
        except ProviderDisabled:
            continue
        except InvalidSecret as error:
            problems.update(error.problems)
    if problems:
        raise InvalidSecret(problems)


class WebhookSecrets:
    def __init__(
        self,
        secret_name: str,
        provider: SecretsProvider | None = None,
        max_age: int = DEFAULT_MAX_AGE_SECONDS,
        *,
        failed_read_seconds: float = FAILED_READ_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        providers: Sequence[str] = PROVIDER_NAMES,
    ) -> None:
        self._secret_name = secret_name
        # Whose entries `check` (/health) inspects: the built-ins and any generic senders.
        self._providers = tuple(providers)
        self._provider = provider or SecretsProvider()
        self._max_age = max_age
        self._failed_read_seconds = failed_read_seconds
        self._clock = clock
        # (retry after, why): Powertools caches only successful reads.
        self._failed_read: tuple[float, str] | None = None
        # Powertools hands back the same document object until max_age: each provider's
        # entry is checked once per document, not on every request. The document is
        # held, so its identity cannot pass to another object.
        self._checked: tuple[dict[str, Any], dict[str, tuple[str, ...]]] | None = None

    def _document(self) -> dict[str, Any]:
        if self._failed_read is not None:
            retry_after, reason = self._failed_read
            if self._clock() < retry_after:
                raise SecretsUnavailable(reason)
        try:
            document = self._provider.get(
                self._secret_name, max_age=self._max_age, transform="json"
            )
        except (GetParameterError, TransformParameterError) as error:
            reason = f"cannot read the webhook secret: {type(error).__name__}"
            self._failed_read = (self._clock() + self._failed_read_seconds, reason)
            raise SecretsUnavailable(reason) from None
        self._failed_read = None
        if not isinstance(document, dict):
            raise SecretsUnavailable("the webhook secret is not a JSON object")
        return document

    def for_provider(self, provider: str) -> tuple[str, ...]:
        """Every accepted secret for `provider`, newest first (see `provider_secrets`)."""
        document = self._document()
        if self._checked is None or self._checked[0] is not document:
            self._checked = (document, {})
        checked = self._checked[1]
        if provider not in checked:
            checked[provider] = provider_secrets(document, provider)
        return checked[provider]

    def api_credential(self, key: str) -> str:
        """A provider API credential kept in the same secret.

        A string under its own key (`mercadopago_access_token`), or, for a provider
        that signs nothing (Khalti, Mollie), the provider's own entry: its first
        secret is the API key that confirms every callback.
        """
        document = self._document()
        value = document.get(key)
        if isinstance(value, list) and key in PROVIDER_NAMES:
            try:
                return provider_secrets(document, key)[0]
            except (ProviderDisabled, InvalidSecret):
                raise ConfigurationError(f"the webhook secret has no usable {key} entry") from None
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"the webhook secret has no {key}")
        return value

    def check(self) -> None:
        """For /health: SecretsUnavailable if unreadable, InvalidSecret if any entry is unusable."""
        check_document(self._document(), self._providers)
