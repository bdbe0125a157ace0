"""One data folder, one `hookline local`: its lock, not its state file, says a stack is there."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hookline.errors import EXIT_CONFIGURATION, ConfigurationError
from hookline.local.console import Console
from hookline.local.stack import (
    LOCK_FILE,
    STATE_FILE,
    StackAlreadyRunning,
    claim_data_dir,
    read_state,
)

API_URL = "http://127.0.0.1:3000"

# A stand-in for a running `hookline local` (without its second of imports): it holds the
# folder's lock as the stack does, writes its state file, says so, and waits on stdin.
HOLDER = f"""
import json, os, sys
from pathlib import Path
from hookline.local.lock import hold

data_dir = Path(sys.argv[1])
with hold(data_dir / "{LOCK_FILE}"):
    state = {{"pid": os.getpid(), "api_url": sys.argv[2]}}
    (data_dir / "{STATE_FILE}").write_text(json.dumps(state))
    print("ready", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), API_URL],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def console() -> tuple[Console, io.StringIO]:
    stream = io.StringIO()
    return Console(stream), stream


def test_a_second_stack_on_the_folder_is_refused_with_the_first_one_s_address(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(StackAlreadyRunning) as refused, claim_data_dir(tmp_path, console()[0]):
        pytest.fail("a second stack claimed the folder")
    assert str(refused.value) == (
        f"a local stack already runs from {tmp_path} ({API_URL}, pid {holder.pid}): "
        "stop it first, or pass --data-dir"
    )
    assert isinstance(refused.value, ConfigurationError)
    assert refused.value.exit_code == EXIT_CONFIGURATION == 3
    # The refused one touched nothing: the running stack's file is as it wrote it.
    assert read_state(tmp_path) == {"pid": holder.pid, "api_url": API_URL}


def test_a_stack_still_starting_is_named_by_its_pid(tmp_path: Path) -> None:
    with (
        claim_data_dir(tmp_path, console()[0]),
        pytest.raises(StackAlreadyRunning) as refused,
        claim_data_dir(tmp_path, console()[0]),
    ):
        pytest.fail("a second stack claimed the folder")
    assert str(refused.value) == (
        f"a local stack is starting from {tmp_path} (pid {os.getpid()}): "
        "stop it first, or pass --data-dir"
    )


def test_a_killed_stack_s_state_is_not_read_and_the_next_start_removes_it(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    assert read_state(tmp_path) is not None
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    # Its file outlives it; the kernel released its lock.
    assert (tmp_path / STATE_FILE).exists()
    assert read_state(tmp_path) is None

    claimer, output = console()
    with claim_data_dir(tmp_path, claimer):
        assert not (tmp_path / STATE_FILE).exists()
    assert f"removed {tmp_path / STATE_FILE}, left by a run that ended without stopping " in (
        output.getvalue()
    )
    assert f"(pid {holder.pid})" in output.getvalue()


def test_a_state_file_naming_a_live_process_is_not_a_running_stack(tmp_path: Path) -> None:
    """A pid is reused; only the lock belongs to the stack."""
    (tmp_path / STATE_FILE).write_text(json.dumps({"pid": os.getpid(), "api_url": API_URL}))
    assert read_state(tmp_path) is None
    (tmp_path / LOCK_FILE).write_text(f"{os.getpid()}\n")  # a lock file nobody holds
    assert read_state(tmp_path) is None


def test_the_lock_is_free_again_once_the_stack_ends(tmp_path: Path) -> None:
    with claim_data_dir(tmp_path, console()[0]):
        (tmp_path / STATE_FILE).write_text(json.dumps({"pid": os.getpid(), "api_url": API_URL}))
        assert read_state(tmp_path) is not None
    assert read_state(tmp_path) is None
    with claim_data_dir(tmp_path, console()[0]):
        pass
