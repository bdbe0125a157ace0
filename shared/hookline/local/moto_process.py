"""moto's server in a process of its own, with the fixes the local stack needs.

`services.moto_process()` starts this module as `python -m hookline.local.moto_process`.
A process of its own gives moto its own interpreter lock: in the stack's
process it competed with the API, the pollers and the log forwarding for one
core. It prints one JSON line with its URL once it serves, ignores Ctrl-C (the
stack stops it last, after the pollers and functions that still talk to it),
and exits when its stdin closes, so it never outlives the stack, however the
stack ends.

`patch_moto()` changes moto 5.2 in a few narrow places (each says why);
everything else is moto as released.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

_PATCHED = "_hookline_patched"


def _now_ms() -> float:
    return time.time() * 1000


def _visible(message: Any) -> bool:
    # moto computes "now" through naive datetimes on each call; for every message
    # of the queue, on every receive, send and attribute read, that was most of the
    # stack's CPU. Same comparison, same clock (Unix epoch milliseconds).
    return bool(_now_ms() > message.visible_at)


def _delayed(message: Any) -> bool:
    return bool(_now_ms() < message.delayed_until)


# How long one count of a queue's messages answers for (see _counted).
_COUNTS_TTL_SECONDS = 0.01


def _counts(queue: Any) -> tuple[int, int, int]:
    """(visible, delayed, in flight) in one pass, reused while fresh.

    moto's Queue.attributes counts every message of the queue three times over, and
    SendMessage reads attributes four times (for ContentBasedDeduplication alone):
    twelve passes over the whole queue per message sent, half of moto's CPU once a
    backlog forms. An addition or deletion changes the key; only a message turning
    visible or invisible goes unseen for up to 10 ms (AWS's own counts are
    approximate by name, and lag far more).
    """
    messages = queue._messages
    key = (id(messages), len(messages))
    now = time.monotonic()
    cached = getattr(queue, "_hookline_counts", None)
    if cached is not None and cached[0] == key and now - cached[1] < _COUNTS_TTL_SECONDS:
        counts: tuple[int, int, int] = cached[2]
        return counts
    at = _now_ms()
    visible = delayed = in_flight = 0
    for message in messages:
        is_delayed = at < message.delayed_until
        is_visible = at > message.visible_at
        delayed += is_delayed
        in_flight += not is_visible
        visible += is_visible and not is_delayed
    counts = (visible, delayed, in_flight)
    queue._hookline_counts = (key, now, counts)
    return counts


def _retention_check(original: Callable[..., bool]) -> Callable[..., bool]:
    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        # moto reads the period through GetQueueAttributes, which counts every
        # message of the queue three times over, once for each message received.
        queue = self.get_queue(queue_name)
        period = getattr(queue, "message_retention_period", None)
        if period is None:
            return original(self, queue_name, message)
        return bool(int(period) + message.sent_timestamp / 1000 > time.time())

    return is_message_valid_based_on_retention_period


def _serialized_receive(original: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        """moto's ReceiveMessage, one at a time per queue, long polling outside it.

        Two concurrent receives that both find a message past the redrive policy's
        maxReceiveCount both move it to the DLQ: the second `list.remove` raises
        ValueError, moto answers 500, and the messages that receive had already
        marked received stay invisible for the whole visibility timeout; two
        concurrent receives can also both take messages of one FIFO group, out of
        order. The queue's own condition lock (its sends take it too) makes each
        scan whole.
        moto's long poll also spins while every visible message sits in a group
        that is in flight; here an empty receive sleeps on the condition, which a
        send, a delete or a visibility change wakes (a timeout expiring, at most
        within a second).
        """
        queue = self.get_queue(queue_name)
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        condition = queue._messages_lock
        with condition:
            while True:
                received = original(
                    self, queue_name, count, 0, visibility_timeout, message_attribute_names
                )
                remaining = deadline - time.monotonic()
                if received or remaining <= 0:
                    return received
                condition.wait(min(remaining, 1.0))

    return receive_message


def _notifying(original: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        """Under the queue's lock, then wake the receives waiting on that queue.

        moto's delete rebuilds the message list from a scan and swaps it in, without
        the lock: a receive moving a message to the DLQ meanwhile (`list.remove`
        mid-scan) made the scan skip a message, lost by the swap, while the moved one
        came back beside its DLQ copy; a send appended between the scan and the swap
        was lost too. A delete may free a FIFO group, a visibility change may show a
        message: either may answer a waiting receive (see _serialized_receive).
        """
        queue = self.queues.get(queue_name)
        if queue is None:
            return original(self, queue_name, *args, **kwargs)
        with queue._messages_lock:
            try:
                return original(self, queue_name, *args, **kwargs)
            finally:
                queue._messages_lock.notify_all()

    method.__name__ = original.__name__
    return method


def _remembered_backend(original: Callable[..., Any]) -> Callable[..., Any]:
    known: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        # moto lists its package directory (a stat per service) and tries every
        # service's URL pattern for each request, under a lock every request takes.
        # The answer depends on the host alone, and the functions use a handful.
        if host not in known:
            known[host] = original(self, host)
        return known[host]

    return get_backend_for_host


def _remembered_method_names(original: Callable[[object], list[str]]) -> Callable[..., list[str]]:
    known: dict[object, list[str]] = {}

    def method_names_from_class(clazz: object) -> list[str]:
        # Asked on every request, answered with inspect.getmembers over the whole
        # response class; classes do not change while the server runs.
        if clazz not in known:
            known[clazz] = original(clazz)
        return known[clazz]

    return method_names_from_class


def moto_patches() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, replacement) for each change `patch_moto` makes."""
    from moto.core import responses
    from moto.core.utils import method_names_from_class
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs.models import Message, Queue, SQSBackend

    patches: list[tuple[Any, str, Any]] = [
        (Queue, "approximate_number_of_messages", property(lambda q: _counts(q)[0])),
        (Queue, "approximate_number_of_messages_delayed", property(lambda q: _counts(q)[1])),
        (
            Queue,
            "approximate_number_of_messages_not_visible",
            property(lambda q: _counts(q)[2]),
        ),
        (
            responses,
            "method_names_from_class",
            _remembered_method_names(method_names_from_class),
        ),
        (
            DomainDispatcherApplication,
            "get_backend_for_host",
            _remembered_backend(DomainDispatcherApplication.get_backend_for_host),
        ),
        (Message, "visible", property(_visible)),
        (Message, "delayed", property(_delayed)),
        (
            SQSBackend,
            "is_message_valid_based_on_retention_period",
            _retention_check(SQSBackend.is_message_valid_based_on_retention_period),
        ),
        (SQSBackend, "receive_message", _serialized_receive(SQSBackend.receive_message)),
    ]
    for name in ("delete_message", "change_message_visibility"):
        patches.append((SQSBackend, name, _notifying(getattr(SQSBackend, name))))
    return patches


def patch_moto() -> None:
    """Apply `moto_patches()` once per process (moto's classes are global)."""
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, _PATCHED, False):
        return
    for owner, name, replacement in moto_patches():
        setattr(owner, name, replacement)
    setattr(SQSBackend, _PATCHED, True)


def _serve(host: str, port: int) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    # werkzeug would print an access line for every AWS call the functions make.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    patch_moto()
    server = make_server(
        host,
        port,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    bound_host, bound_port = server.server_address[:2]

    def stop_when_stdin_closes() -> None:
        sys.stdin.buffer.read()
        server.shutdown()

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(json.dumps({"url": f"http://{bound_host!s}:{bound_port}"}), flush=True)
    server.serve_forever()
    server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    # The stack stops moto last, once nothing talks to it: not on the Ctrl-C the
    # terminal sends to every process of the group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="python -m hookline.local.moto_process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args(argv)
    _serve(options.host, options.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
