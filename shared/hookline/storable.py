"""Text PostgreSQL can store: no NUL, no lone UTF-16 surrogate.

Valid JSON can carry both (`\\u0000`, `\\ud800`), and Python keeps them in a
str; PostgreSQL's text and jsonb refuse them. Standard library only: the
receiver checks identity fields with it without loading a database driver.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
# NUL, and surrogates (a Python str holds a surrogate only when it is unpaired).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """`text` with what PostgreSQL cannot hold replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def is_storable_text(text: str) -> bool:
    return _UNSTORABLE.search(text) is None
