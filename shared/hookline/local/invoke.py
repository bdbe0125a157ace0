"""The part of Lambda's API the local stack's callers use.

- Invoke (POST /2015-03-31/functions/N/invocations): operator commands invoke
  the reconciler through boto3's Lambda client, against AWS with `--stack NAME`
  or against this endpoint locally. One code path for both.
- Event source mappings (list, get, update `Enabled`): the reconciler's circuit
  breaker pauses the consumer's pollers through them, as it pauses the real
  mapping in AWS. The functions reach this endpoint as AWS_ENDPOINT_URL_LAMBDA.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from hookline.local.runtime import Invocation
from hookline.local.sources import QueuePoller

_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_MAPPINGS = "/2015-03-31/event-source-mappings/"


class LocalLambdaApi:
    def __init__(
        self,
        functions: Callable[[], set[str]],
        invoke: Callable[[str, dict[str, Any]], Invocation],
        pollers: Callable[[], list[QueuePoller]],
        function_arn: Callable[[str], str],
        host: str,
    ) -> None:
        def find(uuid: str) -> QueuePoller | None:
            return next((p for p in pollers() if p.uuid == uuid), None)

        class Handler(BaseHTTPRequestHandler):
            def _mapping(self, poller: QueuePoller) -> dict[str, Any]:
                return poller.describe(function_arn(poller.source.function))

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                if split.path.rstrip("/") == _MAPPINGS.rstrip("/"):
                    query = dict(parse_qsl(split.query))
                    wanted = query.get("FunctionName", "").rsplit(":", 1)[-1]
                    listed = [
                        self._mapping(p)
                        for p in pollers()
                        if (not wanted or p.source.function == wanted)
                        and query.get("EventSourceArn", p.queue_arn) == p.queue_arn
                    ]
                    self._send(200, {"EventSourceMappings": listed}, {})
                    return
                poller = find(split.path.removeprefix(_MAPPINGS))
                if poller is None:
                    self._not_found("The resource you requested does not exist.")
                    return
                self._send(200, self._mapping(poller), {})

            def do_PUT(self) -> None:
                poller = find(urlsplit(self.path).path.removeprefix(_MAPPINGS))
                length = int(self.headers.get("Content-Length") or 0)
                update = json.loads(self.rfile.read(length) or b"{}")
                if poller is None:
                    self._not_found("The resource you requested does not exist.")
                    return
                if "Enabled" in update:
                    (poller.enabled.set if update["Enabled"] else poller.enabled.clear)()
                self._send(202, self._mapping(poller), {})

            def _not_found(self, message: str) -> None:
                self._send(
                    404,
                    {"Type": "User", "Message": message},
                    {"x-amzn-ErrorType": "ResourceNotFoundException"},
                )

            def do_POST(self) -> None:
                found = _PATH.match(self.path.split("?", 1)[0])
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b"{}"
                if found is None or found.group(1) not in functions():
                    self._not_found("Function not found")
                    return
                invocation = invoke(found.group(1), json.loads(payload or b"{}"))
                if invocation.failed:
                    self._send(200, invocation.error, {"X-Amz-Function-Error": "Unhandled"})
                else:
                    self._send(200, invocation.result, {})

            def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    # The caller gave up (a CLI interrupted, or past its timeout): the
                    # function's own log lines say what it did; nobody is left to tell.
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the function's own log lines say what it did."""

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
