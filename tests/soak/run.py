"""One soak run: a fresh stack, the workload over HTTP with faults, a drain, the oracle.

The stack is `hookline local` as a user runs it (its own process, the source
tree's functions), with two things in front of it that only the soak needs:
moto in a process of its own that can refuse calls (tests/soak/moto_faults.py),
and a database of its own on a PostgreSQL server (DATABASE_URL's, else an
embedded one under the run's folder), dropped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import urllib3
from hookline.database import connect
from hookline.local.sandbox import REGISTER_PATH
from hookline.local.stack import aws_clients, read_state
from hookline.status import queue_depths
from psycopg import conninfo, sql

from tests.soak import faults as fault_module
from tests.soak.driver import Record, send_all
from tests.soak.workload import SaveOrder, Workload, build
from tests.support import model
from tests.support.postgres import insert_order

ROOT = Path(__file__).resolve().parents[2]
SECRETS_FILE = ROOT / "config" / "local-secrets.example.json"
SCHEMA = "hookline"
# The reconciler settles orphans, redrives dead letters and recovers: often, in a soak.
SCHEDULE_EVERY = 5
START_TIMEOUT = 180.0
POLL_SECONDS = 2.0


@dataclass
class Config:
    deliveries: int = 10_000
    rate: float = 100.0
    senders: int = 64
    seed: int = 1
    faults: list[str] = field(default_factory=lambda: list(fault_module.FAULTS))
    drain_timeout: float = 600.0
    database_url: str | None = None  # a server to create the soak's database on
    work_dir: Path | None = None  # default: a temporary folder, removed at the end
    quiet: bool = False


@dataclass
class Outcome:
    config: Config
    workload: Workload
    record: Record
    injected: list[fault_module.Injected]
    problems: list[str]
    ledger: list[dict[str, Any]]
    queues: dict[str, Any]
    drained_after: float | None  # seconds after the last send; None: never drained
    stack_log: Path
    wall_start: float  # time.time() when sending started
    refused_calls: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems


def _say(config: Config, line: str) -> None:
    if not config.quiet:
        print(f"soak: {line}", file=sys.stderr, flush=True)


def _with_database(url: str, database: str) -> str:
    parts = conninfo.conninfo_to_dict(url)
    parts["dbname"] = database
    return conninfo.make_conninfo("", **{k: str(v) for k, v in parts.items() if v is not None})


@contextlib.contextmanager
def _server(config: Config, work: Path) -> Iterator[str]:
    """A PostgreSQL server's admin URL: DATABASE_URL's server, else an embedded one."""
    url = config.database_url or os.environ.get("DATABASE_URL")
    if url:
        yield _with_database(url, "postgres")
        return
    from hookline.local import services

    with services.embedded_server(work / "postgres") as server:
        yield _with_database(server.url, "postgres")


@contextlib.contextmanager
def _database(admin_url: str) -> Iterator[str]:
    name = f"hookline_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
            )
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def moto_with_faults() -> Iterator[str]:
    """moto with the fault switches (tests/soak/moto_faults.py) in a process of its own."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.soak.moto_faults", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("moto did not start (python -m tests.soak.moto_faults)")
        yield url
    finally:
        process.kill()
        process.wait()


@contextlib.contextmanager
def _stack(
    database_url: str, moto_url: str, dynamodb_url: str, work: Path
) -> Iterator[tuple[dict[str, Any], int]]:
    data_dir = work / ".hookline"
    log_path = work / "stack.log"
    env = {
        **os.environ,
        # As `hookline local` runs its own moto: DynamoDB in a process of its own.
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL", None)
    command = [
        sys.executable,
        "-m",
        "hookline.cli",
        "local",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--database-url",
        database_url,
        "--code",
        "source",
        "--schedule-every",
        str(SCHEDULE_EVERY),
        "--log-format",
        "json",
        "--secrets",
        str(SECRETS_FILE),
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        state = None
        while state is None or "api_url" not in state:
            if process.poll() is not None:
                raise RuntimeError(f"hookline local exited {process.returncode}: see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"hookline local did not start in time: see {log_path}")
            time.sleep(0.5)
            state = read_state(data_dir)
        yield state, process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _secrets() -> dict[str, str]:
    loaded: dict[str, Any] = json.loads(SECRETS_FILE.read_text())
    return {k: v[0] for k, v in loaded.items() if isinstance(v, list) and v}


def _ledger(database_url: str) -> list[dict[str, Any]]:
    with connect(database_url, SCHEMA) as db:
        return db.execute(
            "SELECT provider, event_id, status,"
            " extract(epoch FROM received_at)::float8 AS received,"
            " extract(epoch FROM processed_at)::float8 AS processed"
            " FROM webhook_events"
        ).fetchall()


def _settled(workload: Workload, database_url: str, depths: dict[str, Any]) -> bool:
    """Every queue empty and every event in a status the oracle allows."""
    for depth in depths.values():
        if "error" in depth or any(depth.values()):
            return False
    allowed = {**workload.expected().ledger, **workload.others}
    try:
        rows = {(r["provider"], r["event_id"]): r["status"] for r in _ledger(database_url)}
    except psycopg.OperationalError:
        return False
    return all(rows.get(key) in statuses for key, statuses in allowed.items())


def _check(
    workload: Workload, record: Record, database_url: str, depths: dict[str, Any]
) -> list[str]:
    problems: list[str] = []
    with connect(database_url, SCHEMA) as db:
        problems += model.disagreements(db, workload.world, counted=False)
        ledger = {
            (r["provider"], r["event_id"]): r["status"]
            for r in db.execute("SELECT provider, event_id, status FROM webhook_events")
        }
    for key, statuses in sorted(workload.others.items()):
        if ledger.get(key) not in statuses:
            problems.append(f"ledger {key[0]}/{key[1]}: {ledger.get(key)}, expected ignored")
    # The model's comparison flags ledger rows it does not know; the others are ours.
    problems = [
        p
        for p in problems
        if not any(f"{k[0]}/{k[1]}: unexpected row" in p for k in workload.others)
    ]
    for key in sorted(workload.forged_keys):
        if key in ledger:
            problems.append(f"forged {key[0]}/{key[1]} is in the ledger ({ledger[key]})")
    for delivered in record.delivered:
        send = delivered.send
        label = f"{send.key[0]}/{send.key[1]}"
        if send.forged and delivered.final != 401:
            problems.append(f"forged ({send.forged}) {label} answered {delivered.final}, not 401")
        elif not send.forged and not delivered.accepted:
            answers = [a.status for a in delivered.attempts]
            problems.append(f"genuine {label} never accepted: answers {answers}")
    for name, depth in depths.items():
        if "error" in depth or any(depth.values()):
            problems.append(f"{name} is not empty at the end: {depth}")
    return problems


def run(config: Config) -> Outcome:
    workload = build(config.seed, config.deliveries)
    with contextlib.ExitStack() as stack:
        if config.work_dir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hookline-soak-")))
        else:
            work = config.work_dir
            work.mkdir(parents=True, exist_ok=True)
        admin_url = stack.enter_context(_server(config, work))
        database = stack.enter_context(_database(admin_url))
        database_url = _with_database(admin_url, database)
        moto_url = stack.enter_context(moto_with_faults())
        dynamodb_url = stack.enter_context(moto_with_faults())
        _say(config, f"moto at {moto_url} and {dynamodb_url}; database {database}")
        state, stack_pid = stack.enter_context(_stack(database_url, moto_url, dynamodb_url, work))
        _say(config, f"stack at {state['api_url']}")
        http = urllib3.PoolManager()
        for payment in workload.world.mercadopago.values():
            http.request("POST", state["sandbox_url"] + REGISTER_PATH, json=payment)
        with connect(database_url, SCHEMA) as db:
            for order in workload.orders_before:
                insert_order(db, order.order_id, order.amount, order.currency)

        def save_order(order: SaveOrder) -> None:
            # The shop's database is hookline's: through a cut, the shop retries too.
            deadline = time.monotonic() + 120
            while True:
                try:
                    with connect(database_url, SCHEMA, connect_timeout=5) as db:
                        insert_order(db, order.order_id, order.amount, order.currency)
                    return
                except psycopg.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)

        sqs = aws_clients(state["endpoint_url"], state["region"], ("sqs",))["sqs"]
        secrets = _secrets()
        started = time.monotonic()
        wall_start = time.time()
        injector = fault_module.Injector(
            admin_url=admin_url,
            database=database,
            moto_urls={"sqs_send": moto_url, "dynamodb": dynamodb_url},
            sandbox_url=state["sandbox_url"],
            stack_pid=stack_pid,
            started=started,
        )
        send_seconds = len(workload.steps) / config.rate
        at = [send_seconds * (n + 1) / (len(config.faults) + 1) for n in range(len(config.faults))]
        stop = threading.Event()
        faults_thread = fault_module.schedule(injector, config.faults, at, stop)
        total = len(workload.sends)

        def progress(count: int) -> None:
            if count % 1000 == 0 or count == total:
                _say(config, f"{count}/{total} delivered ({time.monotonic() - started:.0f}s)")

        record = send_all(
            state["api_url"],
            workload.steps,
            secrets.__getitem__,
            save_order,
            rate=config.rate,
            senders=config.senders,
            progress=progress,
        )
        record.started = started
        faults_thread.join()
        _say(config, f"sent in {record.seconds:.0f}s; faults: {len(injector.injected)}; draining")
        sent_at = time.monotonic()
        drained_after: float | None = None
        depths: dict[str, Any] = {}
        while time.monotonic() - sent_at < config.drain_timeout:
            depths = queue_depths(sqs, state["queues"])
            if _settled(workload, database_url, depths):
                drained_after = time.monotonic() - sent_at
                break
            time.sleep(POLL_SECONDS)
        _say(config, f"drained after {drained_after}s" if drained_after else "did not drain")
        depths = queue_depths(sqs, state["queues"])
        problems = _check(workload, record, database_url, depths)
        # A fault that did nothing (no connection to cut, no busy container, no call
        # to refuse) leaves a run that agrees with the oracle and proves nothing.
        problems += fault_module.ineffective(config.faults, injector.injected)
        if drained_after is None:
            problems.insert(0, f"did not drain within {config.drain_timeout:.0f}s")
        return Outcome(
            config=config,
            workload=workload,
            record=record,
            injected=injector.injected,
            problems=problems,
            ledger=_ledger(database_url),
            queues=depths,
            drained_after=drained_after,
            stack_log=work / "stack.log",
            wall_start=wall_start,
            refused_calls=injector.refused(),
        )
    raise AssertionError("unreachable")  # pragma: no cover


def timestamp() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
