"""Lambda's execution model on one machine: warm containers, timeouts, request ids.

Each container is a worker process (`bootstrap.py`) that imports the function
once and serves one invocation at a time. A pool per function grows on demand
up to its concurrency, like Lambda scaling out; a container that times out is
killed and replaced, as Lambda does.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hookline.local.wiring import FunctionSpec

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
ACCOUNT_ID = "123456789012"
INIT_TIMEOUT_SECONDS = 60.0

LogSink = Callable[[str, str], None]


@dataclass(frozen=True)
class Launch:
    """How to start a container: the interpreter, its flags, and sys.path in front."""

    python: str
    flags: tuple[str, ...]
    paths: tuple[str, ...]


def source_launch(function: FunctionSpec) -> Launch:
    """From the source tree: this interpreter, its installed dependencies, the code and layers."""
    return Launch(sys.executable, (), (str(function.code_dir), *map(str, function.layers)))


def build_launch(function: FunctionSpec, python: str) -> Launch:
    """From `sam build` output: only what Lambda would put on sys.path."""
    paths = [str(function.code_dir)]
    for layer in function.layers:
        site = layer / "python" / "lib" / function.runtime / "site-packages"
        paths += [str(layer / "python"), str(site)]
    # -I: no PYTHONPATH or user site; -S: not even the interpreter's own site-packages.
    return Launch(python, ("-I", "-S"), tuple(paths))


@dataclass(frozen=True)
class Invocation:
    request_id: str
    result: Any = None
    error: Mapping[str, Any] | None = None
    duration_ms: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None


class ContainerDied(RuntimeError):
    """The worker process exited or could not start."""


class Container:
    def __init__(
        self,
        function: FunctionSpec,
        launch: Launch,
        environment: Mapping[str, str],
        log: LogSink,
        number: int,
    ) -> None:
        self.function = function
        read_end, write_end = os.pipe()
        stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        env = {
            **environment,
            "HOOKLINE_WORKER_PATHS": json.dumps(list(launch.paths)),
            "HOOKLINE_WORKER_FD": str(write_end),
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        }
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv: our interpreter and script
            [launch.python, *launch.flags, str(BOOTSTRAP)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(write_end,),
            cwd=str(function.code_dir),
        )
        os.close(write_end)
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        label = f"{function.logical_id}#{number}"
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        for stream_ in (self.process.stdout, self.process.stderr):
            threading.Thread(target=self._forward, args=(stream_, label, log), daemon=True).start()
        threading.Thread(target=self._read_answers, args=(read_end,), daemon=True).start()
        ready = self._next_answer(INIT_TIMEOUT_SECONDS)
        if not ready.get("ready"):
            self.kill()
            error = ready.get("error") or {}
            raise ContainerDied(
                f"{function.logical_id} failed to start: "
                f"{error.get('errorType', 'exited')}: {error.get('errorMessage', '')}"
            )

    @staticmethod
    def _forward(stream: IO[bytes], label: str, log: LogSink) -> None:
        for raw in stream:
            log(label, raw.decode("utf-8", "replace").rstrip("\n"))

    def _read_answers(self, descriptor: int) -> None:
        with os.fdopen(descriptor, "r") as answers:
            for line in answers:
                self._answers.put(json.loads(line))
        self._answers.put(None)

    def _next_answer(self, timeout: float) -> dict[str, Any]:
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if answer is None:
            raise ContainerDied(f"{self.function.logical_id} exited")
        return answer

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, event: Any, request_id: str, function_arn: str) -> Invocation:
        timeout = float(self.function.timeout_seconds)
        started = time.monotonic()
        request = {
            "request_id": request_id,
            "function_arn": function_arn,
            "deadline_ms": int((time.time() + timeout) * 1000),
            "trace_id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
            "event": event,
        }
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
            answer = self._next_answer(timeout)
        except TimeoutError:
            self.kill()
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"Task timed out after {timeout:.2f} seconds",
            }
            return Invocation(request_id, error=error, duration_ms=timeout * 1000)
        except (ContainerDied, BrokenPipeError) as died:
            self.kill()
            error = {"errorType": "Runtime.ExitError", "errorMessage": str(died)}
            return Invocation(request_id, error=error)
        elapsed = (time.monotonic() - started) * 1000
        return Invocation(request_id, answer.get("result"), answer.get("error"), elapsed)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def request_stop(self) -> None:
        """End of stdin ends the worker's loop once its invocation, if any, is done."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()

    def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop, and kill the worker if it does not exit in time."""
        self.request_stop()
        try:
            self.process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class FunctionPool:
    """The containers of one function: reused while warm, at most `concurrency` at once."""

    function: FunctionSpec
    launch: Launch
    environment: Mapping[str, str]
    log: LogSink
    concurrency: int
    region: str = "us-east-1"
    _idle: list[Container] = field(default_factory=list)
    _count: int = 0
    _started: int = 0
    _closed: bool = False
    _lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function.logical_id}"

    def _acquire(self) -> Container:
        with self._lock:
            while True:
                if self._closed:
                    raise ContainerDied(f"{self.function.logical_id} is stopping")
                if self._idle:
                    return self._idle.pop()
                if self._count < self.concurrency:
                    self._count += 1
                    self._started += 1
                    number = self._started
                    break
                self._lock.wait()
        try:
            return Container(self.function, self.launch, self.environment, self.log, number)
        except BaseException:
            with self._lock:
                self._count -= 1
                self._lock.notify()
            raise

    def _release(self, container: Container) -> None:
        with self._lock:
            if container.alive and not self._closed:
                self._idle.append(container)
            else:
                self._count -= 1
                container.stop(0)
            self._lock.notify()

    def warm(self) -> None:
        """Start one container now, so a function that cannot start fails the start."""
        self._release(self._acquire())

    def invoke(self, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        try:
            container = self._acquire()
        except ContainerDied as error:
            return Invocation(
                request_id, error={"errorType": "Runtime.InitError", "errorMessage": str(error)}
            )
        try:
            return container.invoke(event, request_id, self.function_arn)
        finally:
            self._release(container)

    def begin_close(self) -> list[Container]:
        """Take no more invocations; ask every idle container to stop. Returns them."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._lock.notify_all()
        for container in idle:
            container.request_stop()
        return idle

    def close(self) -> None:
        for container in self.begin_close():
            container.stop()


def container_environment(
    function: FunctionSpec,
    endpoint_url: str,
    region: str,
    lambda_endpoint_url: str | None = None,
    service_endpoints: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The template's variables, then what Lambda sets and moto in place of AWS.

    Lambda's own variables win over the template's, as in AWS; so does the
    endpoint, which template.yaml declares empty for `sam local`'s sake.
    `service_endpoints` ({"dynamodb": url}) become botocore's per-service
    AWS_ENDPOINT_URL_<SERVICE> variables.
    """
    inherited = {name: os.environ[name] for name in ("PATH", "LANG", "TZ") if name in os.environ}
    return {
        **inherited,
        **function.environment,
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.logical_id}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "LAMBDA_TASK_ROOT": str(function.code_dir),
        "_HANDLER": function.handler,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ENDPOINT_URL": endpoint_url,
        # moto accepts any credentials; these can reach nothing real.
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        # No X-Ray daemon locally: keep the tracer quiet instead of failing to emit.
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        "PYTHONUNBUFFERED": "1",
        # The local Lambda API (invoke, event source mappings) instead of moto's.
        **({"AWS_ENDPOINT_URL_LAMBDA": lambda_endpoint_url} if lambda_endpoint_url else {}),
        **{
            f"AWS_ENDPOINT_URL_{service.upper()}": url
            for service, url in (service_endpoints or {}).items()
        },
    }
