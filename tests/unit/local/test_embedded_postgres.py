"""The embedded PostgreSQL: TCP with a password beside its trusted socket, one owner per folder."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hookline.errors import ConfigurationError
from hookline.local import services
from hookline.local.services import embedded_postgres, embedded_server


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_port_taken_between_choosing_and_binding_is_replaced(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = iter([taken_port])
    real_free_port = services.free_port
    monkeypatch.setattr(
        services, "free_port", lambda host: next(chosen, None) or real_free_port(host)
    )
    with embedded_server(tmp_path, "127.0.0.1") as server:
        assert server.tcp_url is not None
        assert f":{taken_port}/" not in server.tcp_url
        with psycopg.connect(server.tcp_url) as connection:
            assert connection.execute("SELECT current_database()").fetchone() == ("hookline",)
        with psycopg.connect(server.url) as connection:  # the socket, as before
            assert connection.execute("SELECT 1").fetchone() == (1,)
        # The folder has one owner: a second server on it is refused, not shared.
        with (
            pytest.raises(ConfigurationError, match="is in use by pid"),
            embedded_postgres(tmp_path),
        ):
            pytest.fail("a second server started on the folder")
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()


def test_the_socket_is_for_its_owner_only_even_outside_the_data_folder(tmp_path: Path) -> None:
    """A data path too long for a socket name puts the socket in a shared directory
    (/tmp, $XDG_RUNTIME_DIR): there, a trusted socket open to all would make any
    local user the superuser."""
    long_folder = tmp_path / ("x" * 90)
    with embedded_server(long_folder) as server:
        socket_dir = server.url.split("host=")[1].split()[0]
        sockets = list(Path(socket_dir).glob(".s.PGSQL.*"))
        sockets = [path for path in sockets if not path.name.endswith(".lock")]
        assert sockets, server.url
        assert not Path(socket_dir).is_relative_to(long_folder)  # the case at hand
        assert all(path.stat().st_mode & 0o077 == 0 for path in sockets)


def test_stop_now_signals_only_a_server_still_running_as_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second Ctrl-C stops the servers this process started at once, but never a
    process that merely has the pid now (the server ended, the pid was reused)."""
    import subprocess
    import sys

    import psutil  # type: ignore[import-untyped]

    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # What was recorded for a server that ended, whose pid `other` has now:
        # the same pid, another start time (psutil's identity of a process).
        reused = psutil.Process(other.pid)
        reused._ident = (other.pid, reused.create_time() - 3600)
        monkeypatch.setattr(
            services, "_STARTED", {ours.pid: psutil.Process(ours.pid), other.pid: reused}
        )
        assert services.stop_now() == [ours.pid]
        assert ours.wait(10) == -3  # SIGQUIT: PostgreSQL's immediate shutdown
        assert other.poll() is None  # untouched
        assert services._STARTED == {}
    finally:
        for process in (ours, other):
            process.kill()
            process.wait()
