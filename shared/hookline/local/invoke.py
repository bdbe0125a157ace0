"""Lambda's Invoke API for the local stack's functions (POST /2015-03-31/functions/N/invocations).

Operator commands invoke the reconciler through boto3's Lambda client: with the
operator's credentials against AWS (`--stack NAME`), or with this endpoint
against the local stack. One code path for both.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hookline.local.runtime import Invocation

_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


class LocalLambdaApi:
    def __init__(
        self,
        functions: Callable[[], set[str]],
        invoke: Callable[[str, dict[str, Any]], Invocation],
        host: str,
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                found = _PATH.match(self.path.split("?", 1)[0])
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b"{}"
                if found is None or found.group(1) not in functions():
                    self._send(
                        404,
                        {"Type": "User", "Message": "Function not found"},
                        {"x-amzn-ErrorType": "ResourceNotFoundException"},
                    )
                    return
                invocation = invoke(found.group(1), json.loads(payload or b"{}"))
                if invocation.failed:
                    self._send(200, invocation.error, {"X-Amz-Function-Error": "Unhandled"})
                else:
                    self._send(200, invocation.result, {})

            def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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
