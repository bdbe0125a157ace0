"""API Gateway HTTP API (payload format 2.0) events, as API Gateway builds them."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from hookline.providers import WebhookRequest

DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"


def http_event(
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    base64_encoded: bool = False,
    route_key: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    raw_query = urlencode(dict(query or {}))
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method} {path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {name.lower(): value for name, value in (headers or {}).items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": DOMAIN,
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "hookline-tests",
            },
            "requestId": "req-1",
            "routeKey": route_key or f"{method} {path}",
            "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_000_000_000,
        },
        "isBase64Encoded": base64_encoded,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if base64_encoded else body.decode()
    return event


def webhook_event(
    provider: str, request: WebhookRequest, *, base64_encoded: bool = False
) -> dict[str, Any]:
    return http_event(
        "POST",
        f"/webhooks/{provider}",
        body=request.body,
        headers=request.headers,
        query=request.query,
        base64_encoded=base64_encoded,
        route_key="POST /webhooks/{provider}",
        path_parameters={"provider": provider},
    )
