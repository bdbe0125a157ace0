"""The official SDKs' own test vectors: hookline's verdict is theirs, or DELIBERATE says why not.

tests/contract/vectors/ holds one JSON file per upstream repository, naming the
commit its vectors were read from (vectors/README.md: how they were made, how to
refresh them). A vector is one request as the upstream test builds it, the
secrets configured, the clock and tolerance, and the upstream's verdict. It runs
as the receiver runs it: the configured secrets through the one secret rule,
then verify, then normalize where the upstream's verdict depends on the body or
on unsigned headers. A refusal is any answer but 200: 401, 400, 404 or 503.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from hookline.errors import (
    ConfigurationError,
    MalformedEvent,
    ProviderDisabled,
    SignatureRejected,
)
from hookline.providers import WebhookRequest, build_registry
from hookline.secrets import provider_secrets
from pydantic import ValidationError

Verdict = Literal["accept", "refuse"]

VECTORS_DIR = Path(__file__).parent / "vectors"
# hookline always enforces a window: where the upstream checked no time, it runs with its default.
DEFAULT_TOLERANCE = 300
# Every way the receiver says no: 401 (signature), 400 (body or labels of a signed request;
# intake turns pydantic's ValidationError into 400), 404 (no secret), 503 (an unusable secret).
REFUSALS = (
    SignatureRejected,
    MalformedEvent,
    ValidationError,
    ProviderDisabled,
    ConfigurationError,
)

_NO_TIME_WINDOW = (
    "hookline has no mode without a time window: a signature outside it is a replay, however valid"
)
_UNSIGNED_LABEL = (
    "Shopify does not sign this header: its presence proves nothing, so hookline asks only for "
    "what it uses (the HMAC, a topic and an event or webhook id)"
)

# "<file>:<vector id>" → why hookline's verdict differs from the upstream's, on purpose.
DELIBERATE: dict[str, str] = {
    "standard-webhooks:go-old-timestamp-ignoring-tolerance": _NO_TIME_WINDOW,
    "svix-webhooks:go-old-timestamp-ignoring-tolerance": _NO_TIME_WINDOW,
    "svix-webhooks:rs-old-timestamp-ignoring-tolerance": _NO_TIME_WINDOW,
    "svix-webhooks:rs-new-timestamp-ignoring-tolerance": _NO_TIME_WINDOW,
    "svix-webhooks:rs-negative-timestamp-ignoring-tolerance": _NO_TIME_WINDOW,
    "stripe-python:timestamp-off-no-tolerance": _NO_TIME_WINDOW,
    "shopify-app-js:missing-header-apiVersion": _UNSIGNED_LABEL,
    "shopify-app-js:missing-header-domain": _UNSIGNED_LABEL,
    "shopify-app-js:missing-events-header-apiVersion": _UNSIGNED_LABEL,
    "shopify-app-js:missing-events-header-domain": _UNSIGNED_LABEL,
    "shopify-app-js:missing-events-header-webhookId": _UNSIGNED_LABEL,
    "shopify-app-js:missing-events-header-eventId": _UNSIGNED_LABEL,
    "shopify-app-js:process-missing-header-apiVersion": _UNSIGNED_LABEL,
    "shopify-app-js:process-missing-header-domain": _UNSIGNED_LABEL,
}

REGISTRY = build_registry()


@dataclass(frozen=True)
class Vector:
    key: str
    test: str
    provider: str
    secrets: list[str] | None  # None: no secret configured for the provider
    request: WebhookRequest
    now: float
    tolerance: int | None  # None: the upstream checked no time
    normalize: bool
    expected: Verdict


def _body(raw: dict[str, Any]) -> bytes:
    if "body_repeat" in raw:
        repeat = raw["body_repeat"]
        return str(repeat["text"]).encode() * int(repeat["times"])
    return str(raw["body"]).encode("utf-8")


def _vector(source: str, provider: str, raw: dict[str, Any]) -> Vector:
    return Vector(
        key=f"{source}:{raw['id']}",
        test=raw["test"],
        provider=provider,
        secrets=raw["secrets"],
        request=WebhookRequest(
            body=_body(raw),
            # API Gateway hands the receiver lower-cased header names.
            headers={name.lower(): value for name, value in raw["headers"].items()},
            query=raw.get("query", {}),
            url=raw.get("url", ""),
        ),
        now=raw["now"],
        tolerance=raw["tolerance"],
        normalize=raw.get("check", "verify") == "verify+normalize",
        expected=raw["expected"],
    )


def _load() -> tuple[list[dict[str, Any]], list[Vector]]:
    documents: list[dict[str, Any]] = []
    vectors: list[Vector] = []
    for path in sorted(VECTORS_DIR.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        document["source"] = path.stem
        documents.append(document)
        vectors += [_vector(path.stem, document["provider"], raw) for raw in document["vectors"]]
    return documents, vectors


DOCUMENTS, VECTORS = _load()


def hookline_verdict(vector: Vector) -> Verdict:
    provider = REGISTRY[vector.provider]
    document = {} if vector.secrets is None else {vector.provider: vector.secrets}
    tolerance = DEFAULT_TOLERANCE if vector.tolerance is None else vector.tolerance
    try:
        secrets = provider_secrets(document, vector.provider)
        provider.verify(vector.request, secrets, now=vector.now, tolerance=tolerance)
        if vector.normalize:
            received_at = datetime.fromtimestamp(vector.now, UTC)
            provider.normalize(vector.request, received_at=received_at)
    except REFUSALS:
        return "refuse"
    return "accept"


@pytest.mark.parametrize("vector", VECTORS, ids=lambda vector: vector.key)
def test_verdict_is_the_upstreams(vector: Vector) -> None:
    verdict = hookline_verdict(vector)
    reason = DELIBERATE.get(vector.key)
    if reason is None:
        assert verdict == vector.expected, f"{vector.test}: upstream says {vector.expected}"
    else:
        assert verdict != vector.expected, f"agrees now: remove it from DELIBERATE ({reason})"


def test_every_deliberate_difference_names_a_vector() -> None:
    assert set(DELIBERATE) - {vector.key for vector in VECTORS} == set()


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda document: document["source"])
def test_vectors_name_their_upstream_commit_and_tests(document: dict[str, Any]) -> None:
    assert document["repository"].startswith("https://github.com/")
    assert re.fullmatch(r"[0-9a-f]{40}", document["commit"])
    assert document["provider"] in REGISTRY
    assert document["vectors"]
    for raw in document["vectors"]:
        assert any(raw["test"].startswith(path) for path in document["paths"]), raw["id"]
