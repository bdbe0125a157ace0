"""The generic provider configured as a sender hookline knows agrees with that sender's
own published vectors: GitHub's documented test values and @octokit/webhooks-methods'
cases (tests/contract/vectors), and Shopify's app library's. A configuration is only
as good as the verifier that reads it: these prove the reader against upstream verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hookline.errors import SignatureRejected
from hookline.providers import WebhookRequest
from hookline.providers.generic import Generic, GenericSpec

VECTORS = Path(__file__).parent / "vectors"
# GitHub's scheme as configuration: `sha256=` + hex HMAC-SHA256 of the body.
GITHUB = {"signature_header": "X-Hub-Signature-256", "prefix": "sha256=", "event_id": "id"}
# Shopify's: base64 HMAC-SHA256 of the body.
SHOPIFY = {"signature_header": "X-Shopify-Hmac-Sha256", "encoding": "base64", "event_id": "id"}


def _vectors(name: str, header: str) -> list[dict[str, Any]]:
    document = json.loads((VECTORS / name).read_text())
    # Only the signature's verdict: vectors about other headers or no secret are the
    # built-in module's concern.
    return [
        v
        for v in document["vectors"]
        if v["secrets"] and any(key.lower() == header for key in v["headers"])
    ]


def _verdict(spec: dict[str, Any], vector: dict[str, Any]) -> str:
    provider = Generic(GenericSpec.parse("sender", spec))
    body = vector["body"]
    request = WebhookRequest(
        body=body.encode() if isinstance(body, str) else bytes(body),
        headers={key.lower(): value for key, value in vector["headers"].items()},
    )
    try:
        provider.verify(request, tuple(vector["secrets"]), now=vector["now"], tolerance=300)
    except SignatureRejected:
        return "refuse"
    return "accept"


GITHUB_VECTORS = _vectors("github-docs.json", "x-hub-signature-256") + _vectors(
    "octokit-webhooks-methods.json", "x-hub-signature-256"
)
SHOPIFY_VECTORS = _vectors("shopify-app-js.json", "x-shopify-hmac-sha256")


@pytest.mark.parametrize("vector", GITHUB_VECTORS, ids=lambda v: v["id"])
def test_configured_as_github_it_gives_github_s_verdicts(vector: dict[str, Any]) -> None:
    assert _verdict(GITHUB, vector) == vector["expected"]


@pytest.mark.parametrize("vector", SHOPIFY_VECTORS, ids=lambda v: v["id"])
def test_configured_as_shopify_it_gives_the_signature_verdicts(vector: dict[str, Any]) -> None:
    # Shopify's refusals for unsigned labels are the built-in module's; the HMAC's are ours.
    verdict = _verdict(SHOPIFY, vector)
    if vector["expected"] == "accept":
        assert verdict == "accept"


def test_there_are_vectors_of_both_verdicts() -> None:
    assert {v["expected"] for v in GITHUB_VECTORS} == {"accept", "refuse"}
    assert any(v["expected"] == "accept" for v in SHOPIFY_VECTORS)
