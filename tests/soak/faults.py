"""The faults the soak injects while deliveries flow, each switched on and off from outside.

- `postgres`: hookline's database refuses every connection and the open ones are
  cut (`ALLOW_CONNECTIONS false` + `pg_terminate_backend`), then comes back;
- `consumer`: consumer containers are killed (SIGKILL) while they apply a batch;
- `sqs`: SQS answers 500 to every SendMessage (the receiver answers 503);
- `dynamodb`: a throttle burst on every DynamoDB call (the idempotency table);
- `provider_api`: every provider API (Mercado Pago's payments, Stripe's and
  Square's event lists) answers 503.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped]
import psycopg
import urllib3
from psycopg import sql

from tests.soak.moto_faults import CONTROL_PATH

FAULTS = ("postgres", "consumer", "sqs", "dynamodb", "provider_api")
# How long each fault lasts (seconds); `consumer` kills this many containers instead.
DURATION = {"postgres": 6.0, "consumer": 2, "sqs": 4.0, "dynamodb": 4.0, "provider_api": 10.0}
CONSUMER_FUNCTION = "ConsumerFunction"


@dataclass
class Injected:
    name: str
    started: float  # seconds since the run started
    ended: float
    detail: str
    # What the stack met of it: connections cut, containers killed, calls refused.
    # 0: the fault did nothing, and the run proves nothing about it.
    effect: int = 0


def ineffective(planned: list[str], injected: list[Injected]) -> list[str]:
    """A problem for each planned fault not injected, or injected without effect."""
    problems = [
        f"fault {name} was not injected (see the soak's stderr)"
        for name in planned[len(injected) :]
    ]
    problems += [
        f"fault {fault.name} took no effect: {fault.detail}"
        for fault in injected
        if fault.effect <= 0
    ]
    return problems


@dataclass
class Injector:
    """Switches faults on the running stack; records what it did and when."""

    admin_url: str  # a superuser connection to another database on the same server
    database: str  # hookline's database
    moto_urls: dict[str, str]  # the moto process each moto fault is switched on
    sandbox_url: str
    stack_pid: int
    started: float
    injected: list[Injected] = field(default_factory=list)
    _http: urllib3.PoolManager = field(default_factory=urllib3.PoolManager)

    def _now(self) -> float:
        return time.monotonic() - self.started

    def inject(self, name: str) -> Injected:
        action: Callable[[], tuple[str, int]] = getattr(self, f"_{name}")
        began = self._now()
        detail, effect = action()
        done = Injected(name, began, self._now(), detail, effect)
        self.injected.append(done)
        return done

    def _postgres(self) -> tuple[str, int]:
        database = sql.Identifier(self.database)
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database))
            # The functions' own connections (consumer, reconciler) are the ones
            # the fault is about; the soak's own order saves connect too.
            cut = admin.execute(
                "SELECT count(pg_terminate_backend(pid)),"
                " count(*) FILTER (WHERE application_name LIKE 'hookline-%%')"
                " FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.database,),
            ).fetchone()
            try:
                time.sleep(DURATION["postgres"])
            finally:
                admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database))
        total, functions = (int(cut[0]), int(cut[1])) if cut else (0, 0)
        return (
            f"refused connections for {DURATION['postgres']:.0f}s,"
            f" cut {total} ({functions} of hookline's functions)",
            functions,
        )

    def _consumer(self) -> tuple[str, int]:
        killed = 0
        deadline = time.monotonic() + 10
        while killed < DURATION["consumer"] and time.monotonic() < deadline:
            busy = [p for p in self._containers(CONSUMER_FUNCTION) if _busy(p)]
            if not busy:
                time.sleep(0.05)
                continue
            os.kill(busy[0].pid, signal.SIGKILL)
            killed += 1
        return f"killed {killed} busy consumer container(s)", killed

    def _containers(self, function: str) -> list[psutil.Process]:
        found = []
        for child in psutil.Process(self.stack_pid).children(recursive=True):
            try:
                if child.environ().get("AWS_LAMBDA_FUNCTION_NAME") == function:
                    found.append(child)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def _moto(self, fault: str) -> tuple[str, int]:
        seconds = DURATION[fault if fault == "dynamodb" else "sqs"]
        # Counted before arming: every call the fault refuses is in the difference.
        before = self.refused()
        self._http.request(
            "POST",
            self.moto_urls[fault] + CONTROL_PATH,
            body=json.dumps({fault: seconds}).encode(),
            headers={"content-type": "application/json"},
        )
        time.sleep(seconds)
        refused = self.refused().get(fault, 0) - before.get(fault, 0)
        return f"{seconds:.0f}s; refused {refused} calls", refused

    def _sqs(self) -> tuple[str, int]:
        return self._moto("sqs_send")

    def _dynamodb(self) -> tuple[str, int]:
        return self._moto("dynamodb")

    def refused(self) -> dict[str, int]:
        """Calls each moto fault refused so far, over every moto process."""
        total: dict[str, int] = {}
        for url in set(self.moto_urls.values()):
            answer = self._http.request("GET", url + CONTROL_PATH)
            for name, count in json.loads(answer.data)["refused"].items():
                total[name] = total.get(name, 0) + int(count)
        return total

    def _provider_api(self) -> tuple[str, int]:
        def switch(down: bool) -> int:
            answer = self._http.request(
                "POST",
                self.sandbox_url + "/_sandbox/faults",
                body=json.dumps({"down": down}).encode(),
                headers={"content-type": "application/json"},
            )
            return int(json.loads(answer.data).get("refused", 0))

        before = switch(True)
        try:
            time.sleep(DURATION["provider_api"])
        finally:
            refused = switch(False) - before
        return (
            f"every provider API answered 503 for {DURATION['provider_api']:.0f}s;"
            f" refused {refused} calls",
            refused,
        )


def _busy(process: psutil.Process) -> bool:
    """Working on an invocation now (using the CPU), not waiting for one."""
    try:
        return bool(process.cpu_percent(interval=0.02) > 0)
    except psutil.NoSuchProcess:
        return False


def schedule(
    injector: Injector, faults: list[str], at: list[float], stop: threading.Event
) -> threading.Thread:
    """Inject `faults[i]` when the run reaches second `at[i]`, on a thread of their own."""

    def run() -> None:
        for name, when in zip(faults, at, strict=True):
            if stop.wait(max(0.0, when - injector._now())):
                return
            injector.inject(name)

    thread = threading.Thread(target=run, name="soak-faults", daemon=True)
    thread.start()
    return thread
