"""Time left in this invocation, so work that cannot finish is not started.

A Lambda that overruns its timeout loses the whole batch: every record comes
back and counts a receive. Work is budgeted from the context's remaining time
instead; what cannot start in time is handed back (`OutOfTime`) and comes
straight back to a fresh invocation, without counting as its own failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from hookline.errors import OutOfTime


class RemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class Deadline:
    """A moment on the monotonic clock by which this invocation's work must be done."""

    at: float
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    @classmethod
    def of(cls, context: RemainingTime | None, *, reserve_seconds: float) -> Deadline:
        """The Lambda context's end minus `reserve_seconds` (to answer and clean up).

        Without a context (a direct call in a script or test), there is no limit.
        """
        if context is None:
            return cls.never()
        return cls.after(context.get_remaining_time_in_millis() / 1000 - reserve_seconds)

    @classmethod
    def never(cls) -> Deadline:
        return cls(float("inf"))

    @property
    def unbounded(self) -> bool:
        return self.at == float("inf")

    def remaining(self) -> float:
        return self.at - self.clock()

    def require(self, seconds: float, what: str) -> None:
        """Raise OutOfTime unless at least `seconds` are left for `what`."""
        if self.remaining() < seconds:
            raise OutOfTime(f"not enough time left to {what}")
