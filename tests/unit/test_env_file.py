"""`hookline event --env-file` writes the functions' environment owner-only (DATABASE_URL),
with every address of the local stack as a container reaches it."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hookline.local.env_file import container_notes, write_env_file

ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = "postgresql://hookline:s3cret-password@127.0.0.1:5432/shop"
STATE = {
    "endpoint_url": "http://127.0.0.1:4566",
    "functions": {"ConsumerFunction": {"environment": {"DATABASE_URL": DATABASE_URL}}},
}


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask: what a plain write would leave readable by everyone."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_env_file_is_owner_only(tmp_path: Path) -> None:
    path = write_env_file(tmp_path / "events" / "env.json", STATE, ROOT)
    assert mode(path) == 0o600
    written = json.loads(path.read_text())
    assert written["ConsumerFunction"]["DATABASE_URL"] == DATABASE_URL.replace(
        "127.0.0.1", "host.docker.internal"
    )
    assert written["ConsumerFunction"]["AWS_ENDPOINT_URL"] == "http://host.docker.internal:4566"
    # Nothing left behind beside it.
    assert [p.name for p in path.parent.iterdir()] == ["env.json"]


def test_an_env_file_that_was_readable_by_others_becomes_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_env_file(path, STATE, ROOT)
    assert mode(path) == 0o600
    assert "s3cret-password" in path.read_text()


def test_without_the_local_stack_the_template_placeholders_are_written_owner_only(
    tmp_path: Path,
) -> None:
    path = write_env_file(tmp_path / "env.json", None, ROOT)
    assert mode(path) == 0o600
    assert "QUEUE_URL" in json.loads(path.read_text())["ReceiverFunction"]


def test_a_stack_on_every_interface_is_reached_through_host_docker_internal(
    tmp_path: Path,
) -> None:
    """`hookline local --host 0.0.0.0`: 0.0.0.0 is the container itself, not this machine."""
    state = {
        "api_url": "http://0.0.0.0:3000",
        "endpoint_url": "http://0.0.0.0:4566",
        # The embedded server: a socket for this machine, TCP with a password for containers.
        "database_url": "user=postgres dbname=hookline host=/tmp/x/pgdata port=41000",
        "database_tcp_url": "postgresql://postgres:pw%2Fx@0.0.0.0:41000/hookline",
        "functions": {
            "ConsumerFunction": {
                "environment": {
                    "DATABASE_URL": "user=postgres dbname=hookline host=/tmp/x/pgdata port=41000",
                    "QUEUE_URL": "http://0.0.0.0:4566/123456789012/hookline-local-EventsQueue",
                    "STRIPE_API_URL": "http://[::1]:4100/stripe",
                    "MERCADOPAGO_API_URL": "https://api.mercadopago.com",
                    "DATABASE_SCHEMA": "hookline",
                }
            }
        },
    }
    path = write_env_file(tmp_path / "env.json", state, ROOT)
    environment = json.loads(path.read_text())["ConsumerFunction"]
    assert environment == {
        "DATABASE_URL": "postgresql://postgres:pw%2Fx@host.docker.internal:41000/hookline",
        "QUEUE_URL": "http://host.docker.internal:4566/123456789012/hookline-local-EventsQueue",
        "STRIPE_API_URL": "http://host.docker.internal:4100/stripe",
        "MERCADOPAGO_API_URL": "https://api.mercadopago.com",
        "DATABASE_SCHEMA": "hookline",
        "AWS_ENDPOINT_URL": "http://host.docker.internal:4566",
    }
    assert "0.0.0.0" not in path.read_text()  # noqa: S104 - a string looked for, not a bind
    (note,) = container_notes(state)
    assert "--add-host host.docker.internal:host-gateway" in note


def test_a_database_only_on_a_unix_socket_is_said_to_be_unreachable(tmp_path: Path) -> None:
    socket_url = "postgresql://postgres:@/hookline?host=/var/run/postgresql"
    state = {
        "api_url": "http://127.0.0.1:3000",
        "endpoint_url": "http://127.0.0.1:4566",
        "database_url": socket_url,
        "functions": {"ConsumerFunction": {"environment": {"DATABASE_URL": socket_url}}},
    }
    path = write_env_file(tmp_path / "env.json", state, ROOT)
    assert json.loads(path.read_text())["ConsumerFunction"]["DATABASE_URL"] == socket_url
    socket_note, host_note = container_notes(state)
    assert socket_note.startswith("DATABASE_URL is a Unix socket")
    assert "--host 0.0.0.0" in host_note


def test_a_database_on_another_machine_is_left_as_it_is(tmp_path: Path) -> None:
    remote = "postgresql://shop:pw@db.example.com:5432/shop"
    state = {
        "api_url": "http://0.0.0.0:3000",
        "endpoint_url": "http://0.0.0.0:4566",
        "database_url": remote,
        "functions": {"ConsumerFunction": {"environment": {"DATABASE_URL": remote}}},
    }
    path = write_env_file(tmp_path / "env.json", state, ROOT)
    assert json.loads(path.read_text())["ConsumerFunction"]["DATABASE_URL"] == remote
