"""The warm path's cheaper readings say exactly what the plain ones said.

Each reference below is the code the warm path used before it was made
cheaper; the warm path must agree with it on every input, refusals included.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from hookline.envelope import Envelope
from hookline.errors import MalformedEvent
from hookline.providers import PROVIDER_NAMES, WebhookRequest, build_registry
from hookline.providers.base import MAX_JSON_DEPTH, json_object
from hookline.receiver.api import webhook_request

from tests.support.apigw import http_event
from tests.support.signers import NOW, SECRETS, sign

REGISTRY = build_registry()
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC)


def _refuse(name: str) -> float:
    raise ValueError(name)


def reference_json_object(body: bytes) -> dict[str, Any]:
    """json.loads per call and an isinstance walk, as json_object read bodies before."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_refuse)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedEvent("refused") from None
    if not isinstance(data, dict):
        raise MalformedEvent("refused")
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        container, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedEvent("refused")
        for item in container.values() if isinstance(container, dict) else container:
            if isinstance(item, dict | list):
                pending.append((item, depth + 1))
            elif isinstance(item, float) and not math.isfinite(item):
                raise MalformedEvent("refused")
    return data


def reading(read: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "read", read(body)
    except MalformedEvent:
        return "refused", None


LEAVES = ['"text"', '"caf\\u00e9 \\ud800 \\u0000"', "1", "-0", "1.5", "1e308", "1e999"]
LEAVES += ["-1e999", "NaN", "Infinity", "true", "null", "9" * 4_000, "5e-324"]


def random_json(rng: random.Random, depth: int) -> str:
    """A JSON text up to `depth` levels deep; some leaves are what no reader holds."""
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(LEAVES)
    items = [random_json(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.5:
        return "[" + ",".join(items) + "]"
    return "{" + ",".join(f'"k{i}":{item}' for i, item in enumerate(items)) + "}"


def corpus() -> list[bytes]:
    rng = random.Random(14)
    bodies = [sign(provider).request.body for provider in PROVIDER_NAMES]
    for depth in (3, 8, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1):
        bodies.append(("{" + '"a":[' * (depth - 1) + "]" * (depth - 1) + "}").encode())
    bodies += [b"\xef\xbb\xbf{}", b"\xff", b"[]", b"", b" {} ", b'{"a":1} x', b'{"a":}']
    bodies += [f'{{"v":{random_json(rng, 6)}}}'.encode() for _ in range(400)]
    return bodies


@pytest.mark.parametrize("body", corpus(), ids=lambda body: body[:24].decode("utf-8", "replace"))
def test_json_object_reads_and_refuses_what_the_plain_reading_did(body: bytes) -> None:
    ours, plain = reading(json_object, body), reading(reference_json_object, body)
    assert ours == plain
    if ours[0] == "read":  # the same values of the same types, not only equal ones
        assert json.dumps(ours[1]) == json.dumps(plain[1])


def envelopes() -> list[Envelope]:
    found = [
        REGISTRY[provider].normalize(sign(provider).request, received_at=RECEIVED_AT)
        for provider in PROVIDER_NAMES
    ]
    found.append(
        Envelope(
            provider="stripe",
            event_id="evt_ünïcode",
            event_type="payment_intent.succeeded",
            object_id=None,
            occurred_at=None,
            received_at=RECEIVED_AT,
            headers={"x-shopify-topic": "orders/paid", "hookline-replay-of": "evt_0"},
            body='{"note": "caf\\u00e9 \\u0000 \\ud800 €", "raw": "\\" \\\\ \\n"}\n\t\u2028',
        )
    )
    return found


@pytest.mark.parametrize("envelope", envelopes(), ids=lambda envelope: envelope.provider)
def test_the_message_body_is_model_dump_json_byte_for_byte(envelope: Envelope) -> None:
    assert envelope.to_message_body() == envelope.model_dump_json()
    assert Envelope.model_validate_json(envelope.to_message_body()) == envelope


def reference_webhook_request(event: APIGatewayProxyEventV2) -> WebhookRequest:
    """Read through Powertools' properties, as webhook_request did."""
    raw_body = event.body or ""
    if event.is_base64_encoded:
        try:
            body = base64.b64decode(raw_body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedEvent("body is not valid base64") from None
    else:
        body = raw_body.encode("utf-8", "surrogatepass")
    query = event.raw_query_string
    url = f"https://{event.request_context.domain_name}{event.raw_path}"
    return WebhookRequest(
        body=body,
        headers={name.lower(): value for name, value in (event.get("headers") or {}).items()},
        query=event.query_string_parameters or {},
        url=f"{url}?{query}" if query else url,
    )


def api_events() -> list[dict[str, Any]]:
    signed = sign("stripe")
    plain = http_event(
        "POST", "/webhooks/stripe", body=signed.request.body, headers=signed.request.headers
    )
    encoded = http_event("POST", "/webhooks/square", body=b"\xff\x00 not text", base64_encoded=True)
    query = http_event(
        "POST", "/webhooks/mercadopago", body=b"{}", query={"data.id": "123", "type": "payment"}
    )
    mixed_case = {**plain, "headers": {"Stripe-Signature": "t=1,v1=ab", "X-Other": "A"}}
    surrogate = {**plain, "body": '{"id": "evt_\ud800"}'}
    bare = {key: value for key, value in plain.items() if key not in ("body", "headers")}
    broken = {**encoded, "body": "not base64!"}
    return [plain, encoded, query, mixed_case, surrogate, bare, broken]


@pytest.mark.parametrize("event", api_events())
def test_the_request_is_read_from_the_event_as_powertools_reads_it(event: dict[str, Any]) -> None:
    def read(reader: Any) -> tuple[str, Any]:
        try:
            return "read", reader(APIGatewayProxyEventV2(event))
        except MalformedEvent as error:
            return "refused", str(error)

    assert read(webhook_request) == read(reference_webhook_request)


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_every_provider_still_accepts_its_genuine_request(provider: str) -> None:
    signed = sign(provider)
    REGISTRY[provider].verify(signed.request, (SECRETS[provider][0],), now=NOW, tolerance=300)
    envelope = REGISTRY[provider].normalize(signed.request, received_at=RECEIVED_AT)
    assert envelope.event_id == signed.event_id
