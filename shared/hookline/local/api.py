"""API Gateway HTTP API on 127.0.0.1, as `sam local start-api` serves it.

Requests become payload format 2.0 events (lower-cased headers, raw query,
path parameters, base64 bodies for binary content) for the route's function;
its answer becomes the HTTP response. Unknown routes get API Gateway's 404,
and a function error its 500, never the function's traceback.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from hookline.local.runtime import ACCOUNT_ID, Invocation
from hookline.local.wiring import Route, Wiring

API_ID = "local"
# API Gateway's own limit on a request payload.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")

Invoke = Callable[[str, dict[str, Any]], Invocation]
AccessLog = Callable[[str, str, int, float], None]


def _is_text(content_type: str, body: bytes) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    if not (kind.startswith(_TEXT_TYPES) or kind.endswith("+json")):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def http_api_event(
    route: Route,
    path_parameters: Mapping[str, str],
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    domain_name: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A payload format 2.0 event, as API Gateway builds it."""
    now = now or datetime.now(UTC)
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [part.strip() for part in value.split(";") if part.strip()]
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    request_id = base64.b32encode(uuid.uuid4().bytes)[:16].decode()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        if _is_text(merged.get("content-type", ""), body):
            event["body"] = body.decode("utf-8")
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def response_parts(result: Any) -> tuple[int, dict[str, str], list[str], bytes]:
    """Status, headers, cookies and body from a payload 2.0 function result."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # API Gateway's rule for a result without statusCode: 200 with it as JSON.
        return 200, {"content-type": "application/json"}, [], json.dumps(result).encode()
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ",".join(str(v) for v in values)
    return int(result["statusCode"]), headers, list(result.get("cookies") or []), raw


class _Server(ThreadingHTTPServer):
    # API Gateway never refuses a connection: a burst of providers must queue, not
    # meet socketserver's default listen backlog of 5 (connection refused or reset).
    request_queue_size = 128
    daemon_threads = True


class LocalApi:
    def __init__(
        self, wiring: Wiring, invoke: Invoke, host: str, port: int, access_log: AccessLog
    ) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "hookline-local"

            def log_message(self, format: str, *args: Any) -> None:
                """Access lines go through the stack's log instead."""

            def _answer(
                self, status: int, body: bytes, headers: Mapping[str, str], cookies: list[str]
            ) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                for cookie in cookies:
                    self.send_header("Set-Cookie", cookie)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _message(self, status: int, message: str) -> None:
                body = json.dumps({"message": message}).encode()
                self._answer(status, body, {"content-type": "application/json"}, [])

            def _serve(self) -> None:
                started = time.monotonic()
                status = api.serve(self)
                api.access_log(self.command, self.path, status, (time.monotonic() - started) * 1000)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        self.wiring = wiring
        self.invoke = invoke
        self.access_log = access_log
        self.server = _Server((host, port), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self, request: Any) -> int:
        split = urlsplit(request.path)
        found = self.wiring.route_for(request.command, split.path)
        length = request.headers.get("Content-Length")
        if length is None and request.headers.get("Transfer-Encoding"):
            request._message(411, "Length Required")
            return 411
        size = int(length or 0)
        if size > MAX_PAYLOAD_BYTES:
            request._message(413, "Request Entity Too Large")
            request.close_connection = True
            return 413
        body = request.rfile.read(size) if size else b""
        if found is None:
            request._message(404, "Not Found")
            return 404
        route, parameters = found
        event = http_api_event(
            route,
            parameters,
            method=request.command,
            raw_path=split.path,
            raw_query=split.query,
            headers=list(request.headers.items()),
            body=body,
            source_ip=request.client_address[0],
            domain_name=request.headers.get("Host", "127.0.0.1"),
        )
        invocation = self.invoke(route.function, event)
        if invocation.failed:
            request._message(500, "Internal Server Error")
            return 500
        try:
            status, headers, cookies, raw = response_parts(invocation.result)
        except (TypeError, ValueError):
            request._message(500, "Internal Server Error")
            return 500
        request._answer(status, b"" if request.command == "HEAD" else raw, headers, cookies)
        return status

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
