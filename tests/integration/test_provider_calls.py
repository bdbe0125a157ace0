"""Provider API calls fit the time they are given (issue 10, defect 12).

A real HTTP server on loopback answers the way a struggling provider does: a
body that trickles in (each socket read well within its timeout, the whole far
beyond the deadline), or a 429 asking to wait longer than there is time for.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hookline.deadline import Deadline
from hookline.errors import OutOfTime, ProviderApiUnavailable
from hookline.providers import mercadopago

from tests.support.apis import sandbox_apis

BODY = b'{"id": 1, "status": "approved", "currency_id": "BRL", "transaction_amount": 10}'


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """Serves each connection with the given function; yields a starter returning the URL."""
    listeners: list[socket.socket] = []

    def start(answer: Callable[[socket.socket], None]) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                with connection:
                    connection.recv(65536)
                    with contextlib.suppress(OSError):
                        answer(connection)

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for listener in listeners:
        listener.close()


def trickle(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY))
    for index in range(len(BODY)):
        connection.sendall(BODY[index : index + 1])
        time.sleep(0.25)  # well within the 5 s read timeout


def rate_limited(connection: socket.socket) -> None:
    connection.sendall(
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 90\r\nContent-Length: 2\r\n\r\n{}"
    )


def test_an_answer_that_trickles_in_stops_at_the_deadline(
    server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    api = sandbox_apis(server(trickle), "TEST-token")
    deadline = Deadline.after(3.0)
    with pytest.raises(OutOfTime, match="did not arrive in the time left"):
        api.read(mercadopago.API, mercadopago.payment_read("1"), deadline=deadline)
    # Stopped at the first chunk after the deadline (chunks come every 0.25 s).
    assert deadline.remaining() > -1.0


def test_a_retry_after_longer_than_the_time_left_is_not_waited_for(
    server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    api = sandbox_apis(server(rate_limited), "TEST-token", retries=2, respect_retry_after=True)
    deadline = Deadline.after(20.0)
    with pytest.raises(ProviderApiUnavailable, match="429"):
        api.read(mercadopago.API, mercadopago.payment_read("1"), deadline=deadline)
    assert deadline.remaining() > 10.0  # not the 90 s the provider asked for
