"""How the CLI reaches the local stack's Lambda API: an operator's invoke is sent once
and waited for (the functions' 5 s read timeout and retries once ran one `hookline
replay` twice), and the API stays quiet when the CLI has given up."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hookline import remote
from hookline.errors import ServiceUnavailable
from hookline.local.invoke import LocalLambdaApi
from hookline.local.runtime import Invocation


def test_a_local_invoke_client_waits_and_never_retries() -> None:
    client = remote.local_client({"lambda_url": "http://127.0.0.1:9", "region": "us-east-1"})
    config: Any = client.meta.config
    assert config.retries["total_max_attempts"] == 1
    assert config.read_timeout == 900  # Lambda's longest run: the answer is waited for


@pytest.fixture
def hanging_up() -> Iterator[tuple[str, list[str]]]:
    """A Lambda API that reads each request and closes the connection unanswered (as
    one whose answer came after the client's read timeout looks to botocore)."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(self.path)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_an_action_the_stack_did_not_answer_is_sent_once(
    hanging_up: tuple[str, list[str]],
) -> None:
    url, received = hanging_up
    invoke = remote.local({"lambda_url": url, "region": "us-east-1"})
    with pytest.raises(ServiceUnavailable):
        invoke({"action": "replay", "event_id": "evt_1"})
    assert len(received) == 1


def test_the_lambda_api_is_quiet_when_the_caller_has_gone(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A CLI interrupted while the reconciler ran: the answer meets a reset connection."""
    gone = threading.Event()
    answered = threading.Event()

    def invoke(name: str, event: dict[str, Any]) -> Invocation:
        gone.wait(30)
        return Invocation("request", result={"ok": True, "answer": "x" * 100_000})

    api = LocalLambdaApi(lambda: {"ReconcilerFunction"}, invoke, list, str, "127.0.0.1")
    handler: Any = api.server.RequestHandlerClass
    handler.finish = _then(handler.finish, answered.set)
    api.start()
    try:
        host, port = api.server.server_address[:2]
        body = b"{}"
        with socket.create_connection((str(host), port)) as caller:
            caller.sendall(
                b"POST /2015-03-31/functions/ReconcilerFunction/invocations HTTP/1.1\r\n"
                b"Host: x\r\nContent-Length: 2\r\n\r\n" + body
            )
            # Closed with a reset, as a process that has exited leaves it.
            caller.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.set()
        assert answered.wait(30)
    finally:
        api.stop()
    assert "Traceback" not in capfd.readouterr().err


def _then(method: Any, after: Any) -> Any:
    def finish(self: Any) -> None:
        try:
            method(self)
        finally:
            after()

    return finish
