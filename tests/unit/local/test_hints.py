"""Hints name `hookline` the way this installation can be run from where the person is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hookline.local.hints import command, hookline_command
from hookline.local.stack import LocalOptions, ready_line


@pytest.fixture
def venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with a venv whose bin holds this interpreter and a `hookline` script."""
    bin_dir = tmp_path / "project" / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    script = bin_dir / "hookline"
    script.write_text("#!/bin/sh\necho from-the-venv\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    return tmp_path / "project"


def test_in_a_fresh_clone_the_venv_s_script_is_named(venv: Path) -> None:
    assert command("status", cwd=venv) == ".venv/bin/hookline status"
    assert command("send", "stripe", "payment_intent.succeeded", cwd=venv) == (
        ".venv/bin/hookline send stripe payment_intent.succeeded"
    )
    # As printed, it runs: the shell finds a path with a slash without PATH's help.
    printed = hookline_command(venv)
    ran = subprocess.run(printed, shell=True, cwd=venv, capture_output=True, text=True, check=True)  # noqa: S602
    assert ran.stdout == "from-the-venv\n"


def test_from_elsewhere_the_shorter_of_relative_and_absolute(venv: Path, tmp_path: Path) -> None:
    assert hookline_command(venv / "docs") == "../.venv/bin/hookline"
    assert hookline_command(venv / ".venv" / "bin") == "./hookline"
    far = tmp_path.joinpath(*["x"] * 60)  # 60 times "../" is longer than the absolute path
    assert hookline_command(far) == str(venv / ".venv" / "bin" / "hookline")


def test_when_path_finds_this_same_script_the_bare_name(
    venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{venv / '.venv' / 'bin'}:/usr/bin:/bin")
    assert command("status", cwd=venv) == "hookline status"


def test_another_hookline_on_path_is_not_this_one(
    venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "hookline").write_text("#!/bin/sh\n")
    (other / "hookline").chmod(0o755)
    monkeypatch.setenv("PATH", f"{other}:/usr/bin:/bin")
    assert command("status", cwd=venv) == ".venv/bin/hookline status"


def test_without_a_console_script_the_module_is_run(
    venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (venv / ".venv" / "bin" / "hookline").unlink()
    assert command("status", cwd=venv) == ".venv/bin/python -m hookline.cli status"


def test_words_are_quoted_for_the_shell(venv: Path) -> None:
    assert command("send", "stripe", "a b", cwd=venv) == ".venv/bin/hookline send stripe 'a b'"


def test_the_ready_line_names_the_data_folder_only_when_it_is_not_the_default(
    venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(venv)
    default = LocalOptions(project=venv, secrets_file=venv / "s.json", data_dir=venv / ".hookline")
    assert ready_line(default, "http://127.0.0.1:3000") == (
        "ready: http://127.0.0.1:3000 (try `.venv/bin/hookline send stripe "
        "payment_intent.succeeded`, then `.venv/bin/hookline status`); Ctrl-C stops"
    )
    other = LocalOptions(project=venv, secrets_file=venv / "s.json", data_dir=venv / "tmp" / "b")
    line = ready_line(other, "http://127.0.0.1:3001")
    assert "`.venv/bin/hookline send stripe payment_intent.succeeded --data-dir tmp/b`" in line
    assert "`.venv/bin/hookline status --data-dir tmp/b`" in line
