"""The local stack under a steady webhook load, from outside. Prints; asserts nothing.

Ours: `hookline local` started as a person starts it (a subprocess, its own
moto, PostgreSQL at 127.0.0.1:5432 in a database made for this run and dropped
after), driven over loopback HTTP at a fixed rate by an open-loop sender:
every delivery has its slot on the clock, is signed as it leaves (the
providers' own schemes, `hookline.simulate`, with the example secrets file the
stack loads by default) and its latency counts from its slot, so a slow answer
delays nothing else and queueing in the sender is not hidden. Independent
events, round-robin over six providers.

- accepted rate: 2xx answers per second over the round;
- receive p50/p99: slot to answer;
- end to end p50/p99: slot to the ledger row's `processed_at` (the consumer's
  commit in PostgreSQL), for every accepted delivery; one not processed when
  the drain gives up counts as that moment.

A warm-up of 5 s at the same rate comes first, unmeasured (containers start
on demand, as Lambda's do). Floor, in the same run, rounds alternating with
ours: the same sender at the same rate against a bare `ThreadingHTTPServer`
(its own process) that reads the body and answers 200, the least any Python
HTTP server here costs.
Rate and receive latency are also set against the goals of issue 14:
>= 100 deliveries/s, receive p99 <= 100 ms, end to end p99 <= 2 s.

    .venv/bin/python bench/local_stack.py [--rate 100] [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # type: ignore[import-untyped]  # noqa: E402
import psycopg  # noqa: E402
from hookline.local.services import free_port  # noqa: E402
from hookline.simulate.events import SimulatedEvent, Subject, build  # noqa: E402
from hookline.simulate.send import webhook_url  # noqa: E402
from hookline.simulate.signing import signature_headers  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.table import Row, print_table  # noqa: E402

ADMIN_URL = os.environ.get(
    "HOOKLINE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRETS_FILE = ROOT / "config" / "local-secrets.example.json"
HOOKLINE = ROOT / ".venv" / "bin" / "hookline"
RATE = 100.0
SECONDS = 20.0
ROUNDS = 2
SENDERS = 256
DRAIN_SECONDS = 120.0
WARM_UP_SECONDS = 5.0
GOAL_RATE = 100.0
GOAL_RECEIVE_P99_MS = 100.0
GOAL_E2E_P99_MS = 2000.0
# Mercado Pago is left out: its consumer fetches each payment from the sandbox first.
KINDS = (
    ("stripe", "payment_intent.succeeded"),
    ("square", "payment.updated"),
    ("shopify", "orders/paid"),
    ("github", "push"),
    ("svix", "user.created"),
    ("standard", "invoice.paid"),
)

_BARE_SERVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    BODY = b'{"received": true, "event_id": "x"}'

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.do_POST()

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
    """
)


@dataclass
class Delivery:
    event: SimulatedEvent
    slot: float  # monotonic time it is due
    slot_wall: float  # the same moment on the wall clock (PostgreSQL's processed_at is one)
    sent_wall: float = 0.0  # time.time() as it left
    status: int | None = None
    latency_ms: float = 0.0


@dataclass
class Round:
    deliveries: list[Delivery]
    seconds: float
    cpu_seconds: float = 0.0
    e2e_ms: list[float] = field(default_factory=list)
    unprocessed: int = 0

    @property
    def accepted(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.status is not None and 200 <= d.status < 300]

    @property
    def rate(self) -> float:
        return len(self.accepted) / self.seconds

    def receive(self, fraction: float) -> float:
        return percentile([d.latency_ms for d in self.deliveries if d.status is not None], fraction)

    def e2e(self, fraction: float) -> float:
        return percentile(self.e2e_ms, fraction)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("inf")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def secrets() -> dict[str, str]:
    document = json.loads(SECRETS_FILE.read_text())
    return {provider: document[provider][0] for provider, _ in KINDS}


def events(count: int, rng: random.Random) -> list[SimulatedEvent]:
    made = []
    for index in range(count):
        provider, event_type = KINDS[index % len(KINDS)]
        made.append(build(provider, event_type, Subject.new(rng), rng))
    return made


def drive(base_url: str, rate: float, seconds: float, rng: random.Random) -> Round:
    """Open loop: delivery i is due at start + i / rate, whatever came before it."""
    signing = secrets()
    count = int(rate * seconds)
    start = time.monotonic() + 0.5
    start_wall = time.time() + (start - time.monotonic())
    deliveries = [
        Delivery(e, start + i / rate, start_wall + i / rate)
        for i, e in enumerate(events(count, rng))
    ]
    due: queue.Queue[Delivery | None] = queue.Queue()
    for delivery in deliveries:
        due.put(delivery)
    split = urlsplit(base_url)

    def sender() -> None:
        connection = http.client.HTTPConnection(split.hostname or "", split.port, timeout=60)
        while (delivery := due.get()) is not None:
            time.sleep(max(0.0, delivery.slot - time.monotonic()))
            event = delivery.event
            url, notification_url = webhook_url(base_url, event)
            delivery.sent_wall = time.time()
            headers = {
                **event.headers,
                **signature_headers(
                    event,
                    signing[event.provider],
                    url=notification_url,
                    timestamp=int(delivery.sent_wall),
                ),
            }
            target = urlsplit(url)
            path = target.path + (f"?{target.query}" if target.query else "")
            try:
                connection.request("POST", path, body=event.body, headers=headers)
                answer = connection.getresponse()
                answer.read()
                delivery.status = answer.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(
                    split.hostname or "", split.port, timeout=60
                )
            delivery.latency_ms = (time.monotonic() - delivery.slot) * 1000
        connection.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(SENDERS)]
    for _ in threads:
        due.put(None)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = max((d.slot + d.latency_ms / 1000 for d in deliveries), default=start)
    return Round(deliveries, max(ended - start, seconds))


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the stack's containers, moto if apart)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in (root, *root.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def settle(database_url: str, schema: str, run: Round) -> None:
    """Wait for the consumer to commit every accepted delivery; end-to-end latencies."""
    wanted = {(d.event.provider, d.event.event_id): d for d in run.accepted}
    processed: dict[tuple[str, str], datetime] = {}
    deadline = time.monotonic() + DRAIN_SECONDS
    with psycopg.connect(database_url, autocommit=True) as connection:
        while True:
            rows = connection.execute(
                sql.SQL(
                    "SELECT provider, event_id, processed_at FROM {}.webhook_events"
                    " WHERE event_id = ANY(%s) AND processed_at IS NOT NULL"
                ).format(sql.Identifier(schema)),
                ([key[1] for key in wanted if key not in processed],),
            ).fetchall()
            for provider, event_id, processed_at in rows:
                processed[(provider, event_id)] = processed_at
            if len(processed) >= len(wanted) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    gave_up = time.time()
    for key, delivery in wanted.items():
        done = processed.get(key)
        finished = done.timestamp() if done is not None else gave_up
        run.e2e_ms.append((finished - delivery.slot_wall) * 1000)
    run.unprocessed = len(wanted) - len(processed)


def wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/health", timeout=5) as answer,  # noqa: S310
        ):
            if answer.status in (200, 404, 501):
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    name = f"hl_bench_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(ADMIN_URL, dbname=name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def local_stack(database_url: str, extra: Sequence[str] = ()) -> Iterator[tuple[str, int, Path]]:
    """`hookline local` on a free port; (its URL, its pid, its log)."""
    with tempfile.TemporaryDirectory(prefix="hl-bench-") as directory:
        data_dir = Path(directory) / ".hookline"
        port = free_port()
        log = Path(directory) / "local.log"
        environment = {
            k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "DATABASE_URL")
        }
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    str(HOOKLINE),
                    "local",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(data_dir),
                    "--database-url",
                    database_url,
                    "--code",
                    "source",
                    "--secrets",
                    str(SECRETS_FILE),
                    *extra,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=environment,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_ready(process, url)
            except RuntimeError as error:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise RuntimeError(f"hookline local did not start ({error}):\n{tail}") from None
            yield url, process.pid, log
        finally:
            process.send_signal(2)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if os.environ.get("HOOKLINE_BENCH_KEEP_LOG"):
                Path(os.environ["HOOKLINE_BENCH_KEEP_LOG"]).write_bytes(log.read_bytes())


@contextlib.contextmanager
def bare_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", _BARE_SERVER, str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, 30)
        yield url, process.pid
    finally:
        process.kill()
        process.wait()


def measure(
    rate: float = RATE, seconds: float = SECONDS, rounds: int = ROUNDS, extra: Sequence[str] = ()
) -> tuple[list[Round], list[Round]]:
    rng = random.Random(14)
    ours: list[Round] = []
    floor: list[Round] = []
    with (
        fresh_database() as database_url,
        local_stack(database_url, extra) as (url, pid, _),
        bare_server() as (bare_url, bare_pid),
    ):
        # Not measured: the pools grow to what the rate needs (cold starts), as they
        # would early in any sustained load.
        settle(database_url, "hookline", drive(url, rate, WARM_UP_SECONDS, rng))
        for number in range(rounds):
            before = cpu_seconds(pid)
            run = drive(url, rate, seconds, rng)
            settle(database_url, "hookline", run)
            run.cpu_seconds = cpu_seconds(pid) - before
            ours.append(run)
            report("ours", number, run)
            before = cpu_seconds(bare_pid)
            bare = drive(bare_url, rate, seconds, rng)
            bare.cpu_seconds = cpu_seconds(bare_pid) - before
            floor.append(bare)
            report("bare", number, bare)
    return ours, floor


def report(name: str, number: int, run: Round) -> None:
    statuses: dict[str, int] = {}
    for delivery in run.deliveries:
        statuses[str(delivery.status)] = statuses.get(str(delivery.status), 0) + 1
    e2e = (
        f"; e2e p50 {run.e2e(0.5):.0f} ms p99 {run.e2e(0.99):.0f} ms"
        f" ({run.unprocessed} unprocessed)"
        if run.e2e_ms
        else ""
    )
    print(
        f"{name} round {number + 1}: {len(run.deliveries)} sent, answers {statuses}, "
        f"accepted {run.rate:.1f}/s; receive p50 {run.receive(0.5):.1f} ms "
        f"p99 {run.receive(0.99):.1f} ms{e2e}; cpu {run.cpu_seconds:.1f} s "
        f"({run.cpu_seconds / max(1, len(run.accepted)) * 1000:.1f} ms/delivery incl. drain)",
        file=sys.stderr,
    )


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def rows(
    rate: float = RATE, seconds: float = SECONDS, rounds: int = ROUNDS, extra: Sequence[str] = ()
) -> list[Row]:
    ours, floor = measure(rate, seconds, rounds, extra)
    bare = "bare ThreadingHTTPServer, same sender"
    accepted = _median([r.rate for r in ours])
    receive_p99 = _median([r.receive(0.99) for r in ours])
    return [
        Row(
            "local stack accepted rate",
            accepted,
            GOAL_RATE,
            "deliveries/s",
            ">= 1.0x",
            "goal",
            higher_is_better=True,
        ),
        Row(
            "local stack accepted rate",
            accepted,
            _median([r.rate for r in floor]),
            "deliveries/s",
            ">= 1.0x",
            bare,
            higher_is_better=True,
        ),
        Row(
            "local stack receive p50",
            _median([r.receive(0.5) for r in ours]),
            _median([r.receive(0.5) for r in floor]),
            "ms",
            "(info)",
            bare,
        ),
        Row("local stack receive p99", receive_p99, GOAL_RECEIVE_P99_MS, "ms", "<= 1.0x", "goal"),
        Row(
            "local stack receive p99",
            receive_p99,
            _median([r.receive(0.99) for r in floor]),
            "ms",
            "(info)",
            bare,
        ),
        Row(
            "local stack end to end p50",
            _median([r.e2e(0.5) for r in ours]),
            GOAL_E2E_P99_MS,
            "ms",
            "(info)",
            "p99 goal",
        ),
        Row(
            "local stack end to end p99",
            _median([r.e2e(0.99) for r in ours]),
            GOAL_E2E_P99_MS,
            "ms",
            "<= 1.0x",
            "goal",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=RATE, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="per round")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("stack_args", nargs="*", help="more `hookline local` options, after --")
    options = parser.parse_args()
    print_table(rows(options.rate, options.seconds, options.rounds, options.stack_args))


if __name__ == "__main__":
    main()
