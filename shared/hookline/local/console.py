"""Readable terminal output for the local stack.

Functions print Powertools JSON log lines and EMF metric records; a person at a
terminal wants one short line each. `--log-format json` passes them through.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
# Keys every Powertools line carries; printing them on each line hides what matters.
_ROUTINE = {
    "level",
    "message",
    "timestamp",
    "service",
    "location",
    "sampling_rate",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "xray_trace_id",
}
_COLOURS = {"DEBUG": "2", "INFO": "0", "WARNING": "33", "ERROR": "31", "CRITICAL": "31;1"}


class Console:
    def __init__(
        self, stream: TextIO | None = None, level: str = "INFO", json_lines: bool = False
    ) -> None:
        self.stream = stream or sys.stdout
        self.threshold = LEVELS.get(level.upper(), 20)
        self.json_lines = json_lines
        self.colour = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._lock = threading.Lock()

    def _write(self, source: str, level: str, text: str) -> None:
        if LEVELS.get(level, 20) < self.threshold:
            return
        stamp = time.strftime("%H:%M:%S")
        label = f"{source:<14}"
        line = f"{stamp} {label} {level:<7} {text}"
        if self.colour:
            line = f"\x1b[{_COLOURS.get(level, '0')}m{line}\x1b[0m"
        with self._lock:
            print(line, file=self.stream, flush=True)

    def info(self, source: str, text: str) -> None:
        self._write(source, "INFO", text)

    def warning(self, source: str, text: str) -> None:
        self._write(source, "WARNING", text)

    def error(self, source: str, text: str) -> None:
        self._write(source, "ERROR", text)

    def function_line(self, source: str, raw: str) -> None:
        """One line a function printed: a log record, a metric record, or plain text."""
        if self.json_lines:
            with self._lock:
                print(raw, file=self.stream, flush=True)
            return
        try:
            record: Any = json.loads(raw)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            self._write(source, "INFO", raw)
            return
        if "_aws" in record:
            self._write(source, "DEBUG", "metrics " + _metrics(record))
            return
        level = str(record.get("level", "INFO")).upper()
        extras = " ".join(
            f"{key}={_short(value)}" for key, value in record.items() if key not in _ROUTINE
        )
        self._write(source, level, f"{record.get('message', '')} {extras}".rstrip())


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 200 else text[:197] + "..."


def _metrics(record: dict[str, Any]) -> str:
    # A metric in two directives (its total and its per-provider breakdown) is one value.
    names = dict.fromkeys(
        metric["Name"]
        for directive in record["_aws"].get("CloudWatchMetrics", [])
        for metric in directive.get("Metrics", [])
    )
    return " ".join(f"{name}={_short(record.get(name))}" for name in names)
