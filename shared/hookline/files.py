"""Files that hold credentials (a database URL, its password): owner-only from the first byte."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only.

    mkstemp creates the file 0600 beside `path`, which it then replaces: there is
    no moment when the text is readable by others, and a file that was wider
    before is 0600 afterwards too. A symlink at `path` is replaced, not followed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
