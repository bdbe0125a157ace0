"""moto's server in a process of its own, with faults the soak switches on and off.

    python -m tests.soak.moto_faults PORT

Every AWS call of the local stack passes through it (the stack is started with
AWS_ENDPOINT_URL pointing here). `POST /_soak/faults` with
`{"sqs_send": seconds, "dynamodb": seconds}` makes, for that long:

- `sqs_send`: every SendMessage answer 500 InternalError, as SQS does in a bad
  minute (botocore retries it; the receiver then answers 503 and the provider
  retries);
- `dynamodb`: every DynamoDB call answer ProvisionedThroughputExceededException,
  a throttle burst on the idempotency table.

`GET /_soak/faults` answers how many calls each fault refused so far.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

CONTROL_PATH = "/_soak/faults"

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class Faults:
    def __init__(self) -> None:
        self.until: dict[str, float] = {"sqs_send": 0.0, "dynamodb": 0.0}
        self.refused: dict[str, int] = {"sqs_send": 0, "dynamodb": 0}
        self._lock = threading.Lock()

    def arm(self, seconds: dict[str, float]) -> None:
        now = time.monotonic()
        with self._lock:
            for name, duration in seconds.items():
                if name not in self.until:
                    raise ValueError(f"unknown fault {name!r}")
                self.until[name] = now + float(duration)

    def hit(self, target: str) -> tuple[int, dict[str, str]] | None:
        """The error to answer for a call with this X-Amz-Target, if a fault is on."""
        now = time.monotonic()
        if target == "AmazonSQS.SendMessage" and now < self.until["sqs_send"]:
            with self._lock:
                self.refused["sqs_send"] += 1
            return 500, {
                "__type": "com.amazonaws.sqs#InternalError",
                "message": "soak: injected SQS failure",
            }
        if target.startswith("DynamoDB_20120810.") and now < self.until["dynamodb"]:
            with self._lock:
                self.refused["dynamodb"] += 1
            return 400, {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "soak: injected throttle",
            }
        return None


def with_faults(app: Callable[[Environ, StartResponse], Iterable[bytes]], faults: Faults) -> Any:
    def wrapped(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == CONTROL_PATH:
            if environ["REQUEST_METHOD"] == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                try:
                    faults.arm(json.loads(environ["wsgi.input"].read(length) or b"{}"))
                except (ValueError, TypeError) as error:
                    return _answer(start_response, 400, {"message": str(error)})
            return _answer(start_response, 200, {"refused": faults.refused})
        found = faults.hit(str(environ.get("HTTP_X_AMZ_TARGET", "")))
        if found is not None:
            # Read the request body away, as a real server would before answering.
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            return _answer(start_response, found[0], found[1], "application/x-amz-json-1.0")
        return app(environ, start_response)

    return wrapped


def _answer(
    start_response: StartResponse,
    status: int,
    body: dict[str, Any],
    content_type: str = "application/json",
) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 500: "Internal Server Error"}[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", content_type), ("Content-Length", str(len(data)))],
    )
    return [data]


def build_server(port: int) -> BaseWSGIServer:
    """moto as `hookline local` runs it (the same patches), behind the fault switches."""
    from hookline.local.moto_process import patch_moto
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    # Imported by name, not looked up: a soak against unpatched moto would test
    # another SQS than the stack's, and say nothing.
    patch_moto()
    app = with_faults(DomainDispatcherApplication(create_backend_app), Faults())
    return make_server("127.0.0.1", port, app, True, request_handler=MotoRequestHandler)


def main(argv: list[str]) -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = build_server(int(argv[0]) if argv else 0)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
