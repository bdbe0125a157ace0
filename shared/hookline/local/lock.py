"""One owner per directory: an flock held for the owner's lifetime.

The kernel drops an flock when its process ends, however it ends (`kill -9`
included), so a crash never leaves a directory locked; a pid written in a file
would. The owner writes its pid into the lock file so that whoever is refused
can say who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A reader probing the lock (`held`) holds it for microseconds; an owner that is
# refused waits this long for such a reader before concluding the lock is taken.
_PROBE_GRACE_SECONDS = 2.0


class Locked(Exception):
    """Another process holds the lock; `pid` is its pid when it wrote one."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(f"{path} is locked by {'pid ' + str(pid) if pid else 'another process'}")
        self.path = path
        self.pid = pid


def holder(path: Path) -> int | None:
    """The pid the lock's owner wrote, if any (meaningful only while it is held)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def hold(path: Path) -> Iterator[None]:
    """Hold `path`'s lock until the block ends (or the process does); Locked if taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not O_TRUNC: the owner's pid must stay readable until the lock is ours.
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        _acquire(descriptor, path)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            # Emptied before release: a pid left behind would name a process that owns nothing.
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)  # releases the lock


def _acquire(descriptor: int, path: Path) -> None:
    deadline = time.monotonic() + _PROBE_GRACE_SECONDS
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pid = holder(path)
            # A live owner wrote its pid; no pid (or a dead one's) is a reader's brief probe,
            # or an owner between taking the lock and writing its pid.
            if (pid is not None and _alive(pid)) or time.monotonic() > deadline:
                raise Locked(path, pid) from None
            time.sleep(0.02)


def held(path: Path) -> bool:
    """Whether some process holds `path`'s lock, without ever blocking its owner.

    A shared lock, released at once: an owner starting meanwhile retries past it.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False
