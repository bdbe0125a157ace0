"""Commands printed for a person to type, spelled so that they run as printed.

In a fresh clone `hookline` is only in .venv/bin (`make run` starts it from
there), so a hint saying `hookline status` would answer "command not found".
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

_SCRIPT = "hookline"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _shorter(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when that is shorter, else absolute; runnable either way."""
    absolute = str(path)
    try:
        relative = os.path.relpath(path, cwd)
    except ValueError:  # another drive (Windows)
        return absolute
    if os.sep not in relative:
        # A bare name would be looked up on PATH, not in the current directory.
        relative = os.path.join(os.curdir, relative)
    return relative if len(relative) < len(absolute) else absolute


def hookline_command(cwd: Path | None = None) -> str:
    """How to run this installation's `hookline` from `cwd` (default: the current directory).

    `hookline` when the one on PATH is this one (an activated venv, a pipx or
    system install); else the console script beside this interpreter (e.g.
    `.venv/bin/hookline`); else `python -m hookline.cli` with this interpreter.
    """
    here = Path.cwd() if cwd is None else cwd
    # Not resolved: a venv's python is a symlink to the base interpreter, its scripts are not.
    bin_dir = Path(sys.executable).parent
    script = next(
        (bin_dir / name for name in (_SCRIPT, f"{_SCRIPT}.exe") if (bin_dir / name).exists()),
        None,
    )
    on_path = shutil.which(_SCRIPT)
    if script is not None:
        if on_path is not None and _same_file(Path(on_path), script):
            return _SCRIPT
        return shlex.quote(_shorter(script.absolute(), here))
    python = shlex.quote(_shorter(Path(sys.executable).absolute(), here))
    return f"{python} -m hookline.cli"


def command(*words: str, cwd: Path | None = None) -> str:
    """A whole command line: command("status") -> `.venv/bin/hookline status` in a clone."""
    return " ".join([hookline_command(cwd), *(shlex.quote(word) for word in words)])
