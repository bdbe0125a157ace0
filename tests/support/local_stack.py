"""`hookline local` as a subprocess on free ports, and the CLI commands that talk to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
SECRETS_FILE = ROOT / "config" / "local-secrets.example.json"
START_TIMEOUT_SECONDS = 180.0

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.5) -> T:
    """Poll until `check` returns something truthy; fail with its last answer."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not reached within {timeout}s; last: {last!r}")


def cli(*arguments: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookline.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


@dataclass
class LocalStackProcess:
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    @classmethod
    def start(cls, data_dir: Path, arguments: Sequence[str] = ()) -> LocalStackProcess:
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = data_dir / "local.log"
        environment = {
            k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "DATABASE_URL")
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hookline.cli",
                    "local",
                    "--port",
                    "0",
                    "--data-dir",
                    str(data_dir),
                    "--secrets",
                    str(SECRETS_FILE),
                    *arguments,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=environment,
            )
        stack = cls(process, data_dir, log_path)
        try:
            eventually(stack._ready, timeout=START_TIMEOUT_SECONDS)
        except AssertionError:
            stack.stop()
            raise AssertionError("hookline local did not start:\n" + stack.log_tail()) from None
        return stack

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"hookline local exited ({self.process.returncode}):\n{self.log_tail()}"
            )
        try:
            # Its own: a run killed before this one may have left its file behind.
            if self.state.get("pid") != self.process.pid:
                return False
        except (OSError, ValueError):
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as answer:  # noqa: S310
                return bool(answer.status == 200)
        except OSError:
            return False

    @property
    def state(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.data_dir / "stack.json").read_text())
        return loaded

    @property
    def url(self) -> str:
        return str(self.state["api_url"])

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def send(self, *arguments: str) -> dict[str, Any]:
        """`hookline send ... --json` against this stack; its summary."""
        result = cli(
            "send", *arguments, "--url", self.url, "--data-dir", str(self.data_dir), "--json"
        )
        assert result.stdout, result.stderr
        summary: dict[str, Any] = json.loads(result.stdout)
        return summary

    def status(self) -> dict[str, Any]:
        result = cli("status", "--data-dir", str(self.data_dir), "--json")
        assert result.returncode == 0, result.stderr
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def kill(self) -> None:
        """`kill -9`: no stop runs, whatever it started is left behind."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 90.0) -> int:
        """Ctrl-C, as a person would; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    "hookline local did not stop on Ctrl-C:\n" + self.log_tail()
                ) from None
        return self.process.returncode
