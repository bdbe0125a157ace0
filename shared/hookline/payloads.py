"""Provider JSON as PostgreSQL can keep it.

Any JSON a provider signs must be storable, or one hostile body blocks its
group, its parking and every reconciler run after it. `jsonb` refuses two
things valid JSON can hold: the character `\\u0000` and lone UTF-16 surrogates
(`\\ud800`), and numbers beyond its range (Python reads `1e400` as infinity,
which is not JSON at all). The stored `payload` replaces those (U+FFFD; the
number's Python spelling as a string),
and the body is then kept verbatim in `raw_body`, so a replay sends exactly what
the provider signed. Handlers always get the body as parsed, unaltered.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from hookline.errors import MalformedEvent
from hookline.storable import is_storable_text, storable_text


def parse(body: str) -> Any:
    """The body as JSON, or MalformedEvent (not JSON, nested too deep, a number too long)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedEvent("the event body is not JSON this consumer can read") from None


@dataclass(frozen=True)
class Stored:
    """What the ledger keeps of one body."""

    payload: Jsonb
    # The body exactly as received, only when `payload` could not hold it.
    raw_body: str | None


def store_body(body: str) -> Stored:
    """`payload` and `raw_body` for a body not parsed yet (one that does not parse is kept
    whole in `raw_body`)."""
    try:
        parsed = parse(body)
    except MalformedEvent:
        parsed = None
    return store(body, parsed)


def store(body: str, parsed: Any) -> Stored:
    """`payload` and `raw_body` for `body`, given it parsed (None: it did not, or is `null`)."""
    if parsed is None:
        return Stored(Jsonb({}), storable_text(body))
    value, changed = storable(parsed)
    return Stored(Jsonb(value), storable_text(body) if changed else None)


def storable(value: Any) -> tuple[Any, bool]:
    """A copy of a parsed JSON value that jsonb accepts, and whether anything was replaced.

    Iterative, so a value as deep as the parser allows never hits the recursion limit.
    """
    changed = False

    def scalar(item: Any) -> Any:
        nonlocal changed
        if isinstance(item, str) and not is_storable_text(item):
            changed = True
            return storable_text(item)
        if isinstance(item, float) and not math.isfinite(item):
            changed = True
            return repr(item)
        return item

    if not isinstance(value, dict | list):
        return scalar(value), changed
    root: dict[str, Any] | list[Any] = {} if isinstance(value, dict) else []
    pending: list[tuple[Any, dict[str, Any] | list[Any]]] = [(value, root)]
    while pending:
        source, target = pending.pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in pairs:
            copied: Any
            if isinstance(item, dict | list):
                copied = {} if isinstance(item, dict) else []
                pending.append((item, copied))
            else:
                copied = scalar(item)
            if isinstance(target, dict):
                target[scalar(key)] = copied
            else:
                target.append(copied)
    return root, changed
