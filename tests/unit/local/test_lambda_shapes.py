"""The local stack's API Gateway events and answers, and its SQS mapping rules, are Lambda's."""

from __future__ import annotations

import base64
import json

import pytest
from hookline.local.api import http_api_event, response_parts
from hookline.local.runtime import Invocation
from hookline.local.sources import failed_message_ids
from hookline.local.wiring import Route

ROUTE = Route("POST", "/webhooks/{provider}", "ReceiverFunction", "2.0")


def event(body: bytes, content_type: str, **extra: object) -> dict[str, object]:
    return http_api_event(
        ROUTE,
        {"provider": "stripe"},
        method="POST",
        raw_path="/webhooks/stripe",
        raw_query="data.id=1&type=payment&type=x",
        headers=[
            ("Content-Type", content_type),
            ("X-Dup", "a"),
            ("x-dup", "b"),
            ("Cookie", "a=1; b=2"),
        ],
        body=body,
        source_ip="127.0.0.1",
        domain_name="127.0.0.1:3000",
        **extra,  # type: ignore[arg-type]
    )


def test_payload_format_2_fields() -> None:
    built = event(b'{"id": 1}', "application/json")
    assert built["version"] == "2.0"
    assert built["routeKey"] == "POST /webhooks/{provider}"
    assert built["pathParameters"] == {"provider": "stripe"}
    assert built["rawQueryString"] == "data.id=1&type=payment&type=x"
    assert built["queryStringParameters"] == {"data.id": "1", "type": "payment,x"}
    headers = built["headers"]
    assert isinstance(headers, dict)
    assert headers["content-type"] == "application/json"
    assert headers["x-dup"] == "a,b"
    assert "cookie" not in headers
    assert built["cookies"] == ["a=1", "b=2"]
    assert built["body"] == '{"id": 1}'
    assert built["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"\xff\xfe", "application/json"), (b"plain", "application/octet-stream")],
)
def test_binary_or_non_text_bodies_are_base64(body: bytes, content_type: str) -> None:
    built = event(body, content_type)
    assert built["isBase64Encoded"] is True
    assert base64.b64decode(str(built["body"])) == body


def test_function_answers_become_http_responses() -> None:
    status, headers, cookies, body = response_parts(
        {"statusCode": 401, "headers": {"content-type": "application/json"}, "body": "{}"}
    )
    assert (status, headers["content-type"], cookies, body) == (401, "application/json", [], b"{}")
    encoded = base64.b64encode(b"\x00\x01").decode()
    assert (
        response_parts({"statusCode": 200, "body": encoded, "isBase64Encoded": True})[3]
        == b"\x00\x01"
    )
    # No statusCode: API Gateway answers 200 with the result as JSON.
    assert response_parts({"ok": True})[0::3] == (200, json.dumps({"ok": True}).encode())


IDS = ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    ("invocation", "reports", "expected"),
    [
        (Invocation("r", result={"batchItemFailures": []}), True, set()),
        (Invocation("r", result={"batchItemFailures": [{"itemIdentifier": "m2"}]}), True, {"m2"}),
        (Invocation("r", error={"errorType": "Boom"}), True, set(IDS)),
        (Invocation("r", error={"errorType": "Boom"}), False, set(IDS)),
        (Invocation("r", result={"batchItemFailures": [{"itemIdentifier": "m2"}]}), False, set()),
        (Invocation("r", result={"batchItemFailures": [{"itemIdentifier": "zz"}]}), True, set(IDS)),
        (Invocation("r", result={"batchItemFailures": [{"itemIdentifier": ""}]}), True, set(IDS)),
        (Invocation("r", result={"batchItemFailures": "m1"}), True, set(IDS)),
        (Invocation("r", result=None), True, set()),
    ],
)
def test_which_messages_stay_on_the_queue(
    invocation: Invocation, reports: bool, expected: set[str]
) -> None:
    assert failed_message_ids(invocation, IDS, reports) == expected
