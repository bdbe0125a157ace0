"""Providers that sign nothing (Khalti, Mollie) have API routes of their own, throttled
apart: anyone can post to them, and a flood there must not spend every other provider's
request budget. The receiver serves them as it serves /webhooks/{provider}."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hookline import template
from hookline.providers import UNSIGNED_PROVIDERS, WebhookRequest

from tests.integration.test_receiver import _emitted_metrics, invoke
from tests.support.apigw import http_event
from tests.support.stack import Stack

BODIES = {"khalti": b"pidx=bZQLD9wRVWo4CdESSfuSsB&status=Completed", "mollie": b"id=tr_WDqYK6vllg"}


def own_route_event(provider: str, request: WebhookRequest) -> dict[str, Any]:
    """As API Gateway invokes an explicit route: its own route key, no path parameter."""
    return http_event(
        "POST",
        f"/webhooks/{provider}",
        body=request.body,
        headers={"content-type": "application/x-www-form-urlencoded"},
        route_key=f"POST /webhooks/{provider}",
    )


@pytest.mark.parametrize("provider", UNSIGNED_PROVIDERS)
def test_each_unsigned_provider_has_a_route_throttled_by_its_own_parameters(
    provider: str,
) -> None:
    document = template.load()
    resources = document["Resources"]
    events = resources["ReceiverFunction"]["Properties"]["Events"].values()
    assert {"Path": f"/webhooks/{provider}", "Method": "POST"}.items() <= next(
        e["Properties"] for e in events if e["Properties"]["Path"] == f"/webhooks/{provider}"
    ).items()
    settings = resources["HttpApi"]["Properties"]["RouteSettings"][f"POST /webhooks/{provider}"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "UnsignedWebhookRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "UnsignedWebhookBurstLimit"},
    }
    defaults = document["Parameters"]
    assert (
        defaults["UnsignedWebhookRateLimit"]["Default"]
        < defaults["ApiThrottlingRateLimit"]["Default"]
    )


@pytest.mark.parametrize("provider", UNSIGNED_PROVIDERS)
def test_the_receiver_serves_an_unsigned_provider_on_its_own_route(
    stack: Stack, provider: str, output: pytest.CaptureFixture[str]
) -> None:
    status, body, _ = invoke(own_route_event(provider, WebhookRequest(body=BODIES[provider])))
    assert (status, body["received"]) == (200, True)
    [message] = stack.messages()
    assert json.loads(message["Body"])["provider"] == provider
    status, _, _ = invoke(own_route_event(provider, WebhookRequest(body=b"id=ord_1&pidx=")))
    assert status == 400
    # Counted and logged under its provider, though the route has no {provider} parameter.
    printed = output.readouterr().out
    assert ("WebhooksAccepted", {"service": "hookline", "provider": provider}) in (
        _emitted_metrics(printed)
    )
    refusals = [
        line
        for line in map(json.loads, filter(None, printed.splitlines()))
        if line.get("message") == "malformed event"
    ]
    assert [line["provider"] for line in refusals] == [provider]
