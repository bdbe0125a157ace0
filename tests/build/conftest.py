from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hookline import sam


def run_or_fail(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="session")
def x86_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` for x86_64 (this machine), shared by every test that runs the output."""
    directory = tmp_path_factory.mktemp("x86_64")
    run_or_fail(sam.build(directory, architecture="x86_64"))
    return directory
