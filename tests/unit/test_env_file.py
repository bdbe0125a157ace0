"""`hookline event --env-file` writes the functions' environment owner-only (DATABASE_URL)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hookline.cli import write_env_file

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
    assert written["ConsumerFunction"]["DATABASE_URL"] == DATABASE_URL
    assert written["ConsumerFunction"]["AWS_ENDPOINT_URL"] == "http://host.docker.internal:4566"
    # Nothing left behind beside it.
    assert [p.name for p in path.parent.iterdir()] == ["env.json"]


def test_an_env_file_that_was_readable_by_others_becomes_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_env_file(path, STATE, ROOT)
    assert mode(path) == 0o600
    assert DATABASE_URL in path.read_text()


def test_without_the_local_stack_the_template_placeholders_are_written_owner_only(
    tmp_path: Path,
) -> None:
    path = write_env_file(tmp_path / "env.json", None, ROOT)
    assert mode(path) == 0o600
    assert "QUEUE_URL" in json.loads(path.read_text())["ReceiverFunction"]
