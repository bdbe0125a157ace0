"""The error classes the receiver's code raises, found by reading it (AST), not listed."""

from __future__ import annotations

import ast
from pathlib import Path

from hookline import errors
from hookline.errors import HooklineError


def every_error_class() -> list[type[HooklineError]]:
    found: list[type[HooklineError]] = []
    pending: list[type[HooklineError]] = [HooklineError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending.extend(kind.__subclasses__())
    return sorted(found, key=lambda kind: kind.__name__)


def raised_by_the_receiver() -> set[type[HooklineError]]:
    """Classes named in `raise Name(...)` in the receiver and the modules it calls."""
    package = Path(errors.__file__).parent
    files = [*package.glob("receiver/*.py"), *package.glob("providers/**/*.py")]
    files += [package / name for name in ("secrets.py", "queue.py", "settings.py", "envelope.py")]
    by_name = {kind.__name__: kind for kind in every_error_class()}
    raised = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                called = node.exc.func
                if isinstance(called, ast.Name) and called.id in by_name:
                    raised.add(by_name[called.id])
    return raised
