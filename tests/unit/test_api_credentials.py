"""API credentials come from the webhook secret: a string under its own key, or, for a
provider that signs nothing (Khalti, Mollie), its own entry's first secret."""

from __future__ import annotations

from typing import Any

import pytest
from hookline.errors import ConfigurationError
from hookline.secrets import WebhookSecrets


class _Document:
    """Powertools' SecretsProvider, answering one document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def get(self, name: str, **_: object) -> dict[str, Any]:
        return self.document


def secrets(document: dict[str, Any]) -> WebhookSecrets:
    return WebhookSecrets("hookline/webhook-secrets", _Document(document))  # type: ignore[arg-type]


def test_a_string_credential_is_read_under_its_key() -> None:
    assert secrets({"stripe_api_key": "rk_test_fake"}).api_credential("stripe_api_key") == (
        "rk_test_fake"
    )


def test_an_unsigned_provider_s_credential_is_its_entry_s_first_secret() -> None:
    document = {"khalti": ["key-new-fake", "key-old-fake"], "mollie": ["test_fake"]}
    assert secrets(document).api_credential("khalti") == "key-new-fake"
    assert secrets(document).api_credential("mollie") == "test_fake"


@pytest.mark.parametrize(
    "document",
    [
        # A list where a string belongs is never handed out: it would be another
        # provider's webhook secret sent to Stripe as a bearer token.
        {"stripe_api_key": ["acme-webhook-hmac-secret"]},
        {"stripe_api_key": "  "},
        {},
        {"khalti": []},
        {"khalti": [" padded-fake "]},
    ],
)
def test_anything_else_is_a_configuration_error(document: dict[str, Any]) -> None:
    key = "khalti" if "khalti" in document else "stripe_api_key"
    with pytest.raises(ConfigurationError):
        secrets(document).api_credential(key)
