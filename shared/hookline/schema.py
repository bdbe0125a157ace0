"""hookline's own PostgreSQL schema: its name, and the rule a name must follow.

Everything hookline creates (tables, indexes, `schema_migrations`) lives in one
schema, `hookline` unless DATABASE_SCHEMA says otherwise, beside the shop's own
tables and never among them. Sessions reach it through their search_path
(database.enter_schema). No psycopg here: the receiver's settings import it.
"""

from __future__ import annotations

import re

from hookline.errors import ConfigurationError

DEFAULT_SCHEMA = "hookline"

# Lowercase, so it needs no quoting anywhere; 56 characters at most, so that
# `<schema>_orders` (its NOTIFY channel) is still an identifier (63 bytes).
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,55}")


def schema_name(name: str) -> str:
    """`name` if it can be hookline's schema, else ConfigurationError saying why not."""
    if not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"schema {name!r}: use 1-56 lowercase letters, digits or _, not starting with a digit"
        )
    if name.startswith("pg_") or name == "information_schema":
        raise ConfigurationError(f"schema {name!r} is reserved by PostgreSQL")
    return name
