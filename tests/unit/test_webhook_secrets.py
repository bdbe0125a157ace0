"""The one rule for a usable webhook secret, and the memory of a failed read.

The rule (hookline.secrets.provider_secrets) is what the receiver, /health and
`hookline local` all apply; the failed-read memory runs against moto with a
real boto3 client whose calls botocore's own event hook counts.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from hookline.errors import InvalidSecret, ProviderDisabled, SecretsUnavailable
from hookline.providers import PROVIDER_NAMES
from hookline.secrets import (
    FAILED_READ_SECONDS,
    WebhookSecrets,
    check_document,
    provider_secrets,
)

from tests.support.signers import SECRETS

WHSEC = ("svix", "standard")
# Adyen's key is hex (decoded to bytes): a secret that is not is no key.
HEX_KEY = ("adyen",)
# Used as typed: HMAC keys, and Khalti's and Mollie's API keys (they sign nothing).
PLAIN_HMAC = tuple(name for name in PROVIDER_NAMES if name not in WHSEC + HEX_KEY)

# Unusable for every provider: the entry's shape, or a secret that is no key.
UNUSABLE = {
    "a bare string": "whsec_abc",
    "an empty list": [],
    "null": None,
    "an object": {"current": "whsec_abc"},
    "an empty secret": [""],
    "a blank secret": [" "],
    "a whitespace secret": ["\t\r\n"],
    "a number": [12345],
    "a blank older secret": ["whsec_dGhlLWN1cnJlbnQta2V5", " "],
    # Pasted with a space or newline: every HMAC would fail while /health said ok.
    "a secret with a trailing space": ["whsec_dGhlLWN1cnJlbnQta2V5 "],
    "a secret with a trailing newline": ["whsec_dGhlLWN1cnJlbnQta2V5\n"],
    "a secret with a lone surrogate": ["whsec_dGhlLWN1cnJlbnQta2V5\ud800"],
}
# Unusable for svix and standard only: whsec_ must carry base64 of a non-empty key.
UNUSABLE_WHSEC = {
    "whsec_ alone": ["whsec_"],
    "whsec_ and padding": ["whsec_=="],
    "not base64": ["whsec_not base64!"],
    "one base64 character": ["whsec_a"],
}


def document(provider: str, entry: object) -> dict[str, object]:
    return {**{name: list(secrets) for name, secrets in SECRETS.items()}, provider: entry}


@pytest.mark.parametrize("entry", UNUSABLE.values(), ids=UNUSABLE)
@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_an_unusable_entry_is_a_configuration_error_naming_the_provider(
    provider: str, entry: object
) -> None:
    with pytest.raises(InvalidSecret) as caught:
        provider_secrets(document(provider, entry), provider)
    assert caught.value.providers == [provider]


@pytest.mark.parametrize("entry", UNUSABLE_WHSEC.values(), ids=UNUSABLE_WHSEC)
@pytest.mark.parametrize("provider", WHSEC)
def test_a_whsec_secret_without_a_key_is_a_configuration_error(
    provider: str, entry: list[str]
) -> None:
    with pytest.raises(InvalidSecret) as caught:
        provider_secrets(document(provider, entry), provider)
    assert caught.value.providers == [provider]


@pytest.mark.parametrize(
    "entry", [["not-hex"], ["ABC"], ["whsec_dGhlLWN1cnJlbnQta2V5"], ["0x" + "AB" * 32]], ids=str
)
@pytest.mark.parametrize("provider", HEX_KEY)
def test_a_key_that_is_not_hex_is_a_configuration_error(provider: str, entry: list[str]) -> None:
    with pytest.raises(InvalidSecret) as caught:
        provider_secrets(document(provider, entry), provider)
    assert caught.value.providers == [provider]


@pytest.mark.parametrize("provider", HEX_KEY)
def test_hex_keys_of_either_case_are_used_as_they_are(provider: str) -> None:
    secrets = [SECRETS[provider][0], SECRETS[provider][1].lower()]
    assert provider_secrets(document(provider, secrets), provider) == tuple(secrets)


@pytest.mark.parametrize("provider", PLAIN_HMAC)
def test_plain_hmac_secrets_are_used_as_they_are(provider: str) -> None:
    # "whsec_" is a perfectly good Stripe-style key: only svix/standard decode it.
    secrets = ["whsec_", "key with inner spaces"]
    assert provider_secrets(document(provider, secrets), provider) == tuple(secrets)


@pytest.mark.parametrize("provider", WHSEC)
def test_whsec_secrets_without_padding_or_prefix_are_usable(provider: str) -> None:
    secrets = ["whsec_c3ZpeC1rZXk", "c3ZpeC1rZXk="]  # base64 of b"svix-key", unpadded; no prefix
    assert provider_secrets(document(provider, secrets), provider) == tuple(secrets)


def test_a_provider_without_an_entry_is_disabled() -> None:
    with pytest.raises(ProviderDisabled):
        provider_secrets({"stripe": ["whsec_x"]}, "github")


def test_problems_name_providers_and_never_a_value() -> None:
    bad = {"stripe": "whsec_do-not-print", "svix": ["whsec_"], "square": [" "], "github": ["ok"]}
    with pytest.raises(InvalidSecret) as caught:
        check_document({**bad, "stripe_api_key": "sk_test_not_a_webhook_secret"})
    assert caught.value.providers == ["square", "stripe", "svix"]
    assert "do-not-print" not in str(caught.value)


def test_api_credentials_beside_the_secrets_are_not_checked_as_secrets() -> None:
    check_document({"stripe": ["whsec_x"], "stripe_api_key": "sk_test_x", "unknown": 3})


# ------------------------------------------------------------------ a failed read


@dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


SECRET_NAME = "hookline-test/webhook-secrets"


@pytest.fixture
def secretsmanager(aws: None) -> Any:
    return boto3.client("secretsmanager")


def counted(client: Any) -> Counter[str]:
    """Every operation `client` calls, counted by botocore before it is sent."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call", count)
    return calls


def test_a_failed_read_is_remembered_so_a_flood_costs_one_call(secretsmanager: Any) -> None:
    calls = counted(secretsmanager)
    clock = Clock()
    secrets = WebhookSecrets(SECRET_NAME, SecretsProvider(boto3_client=secretsmanager), clock=clock)

    for _ in range(50):
        with pytest.raises(SecretsUnavailable):
            secrets.for_provider("stripe")
        with pytest.raises(SecretsUnavailable):
            secrets.check()
    assert calls["GetSecretValue"] == 1

    secretsmanager.create_secret(Name=SECRET_NAME, SecretString=json.dumps({"stripe": ["k"]}))
    clock.now += FAILED_READ_SECONDS - 0.01
    with pytest.raises(SecretsUnavailable):  # still remembered: no call
        secrets.for_provider("stripe")
    assert calls["GetSecretValue"] == 1

    clock.now += 0.01
    assert secrets.for_provider("stripe") == ("k",)
    assert secrets.for_provider("stripe") == ("k",)  # Powertools' cache of the good read
    assert calls["GetSecretValue"] == 2


def test_a_secret_that_is_not_json_is_remembered_too(secretsmanager: Any) -> None:
    secretsmanager.create_secret(Name=SECRET_NAME, SecretString="{not json")
    calls = counted(secretsmanager)
    clock = Clock()
    secrets = WebhookSecrets(SECRET_NAME, SecretsProvider(boto3_client=secretsmanager), clock=clock)
    for _ in range(10):
        with pytest.raises(SecretsUnavailable):
            secrets.for_provider("stripe")
    assert calls["GetSecretValue"] == 1
    clock.now += FAILED_READ_SECONDS
    with pytest.raises(SecretsUnavailable):
        secrets.for_provider("stripe")
    assert calls["GetSecretValue"] == 2


def test_a_rotation_is_used_once_the_cached_read_expires(secretsmanager: Any) -> None:
    """Each document is checked once, and a rotated one (a new read) replaces it: the
    new secret is accepted, an unusable one is refused, never the old one reused."""
    secretsmanager.create_secret(Name=SECRET_NAME, SecretString=json.dumps({"stripe": ["old"]}))
    secrets = WebhookSecrets(SECRET_NAME, SecretsProvider(boto3_client=secretsmanager), max_age=0)
    assert secrets.for_provider("stripe") == ("old",)
    secretsmanager.put_secret_value(
        SecretId=SECRET_NAME, SecretString=json.dumps({"stripe": ["new", "old"]})
    )
    assert secrets.for_provider("stripe") == ("new", "old")
    secretsmanager.put_secret_value(
        SecretId=SECRET_NAME, SecretString=json.dumps({"stripe": [" "]})
    )
    with pytest.raises(InvalidSecret):
        secrets.for_provider("stripe")
    with pytest.raises(ProviderDisabled):
        secrets.for_provider("square")
