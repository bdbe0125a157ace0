"""--since and --until: ISO 8601 or an age, checked before anything is sent.

Accepted: a date (`2026-01-31`, midnight UTC), a date and time with or without
an offset (`2026-01-31T14:00`, `2026-01-31 14:00:05+02:00`, `...Z`; no offset
means UTC), or an age counted back from now: `90s`, `30m`, `2h`, `1d`, `1w`.
Anything else (`yesterday`, `garbage`) is a usage error naming these forms, and
so is a time outside 0001-01-01..9999-12-31 UTC (`999999d`); the
request carries the time as an ISO 8601 UTC string, which the reconciler only
has to read, never to guess at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click

FORMS = (
    "a date (2026-01-31), a time (2026-01-31T14:00, UTC unless it has an offset)"
    " or an age (30m, 2h, 1d, 1w)"
)
RANGE = "a time between 0001-01-01 and 9999-12-31 UTC"
_AGE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


class OutOfRange(ValueError):
    """A time of a valid form that no UTC datetime holds (year 1 to 9999)."""


def parse(text: str, now: datetime) -> datetime | None:
    """The moment `text` names (aware, UTC), or None when it is none of the forms.

    Raises OutOfRange for a form that names no representable moment: an age
    further back than year 1 (`999999d`), or a time with an offset that moves it
    past year 1 or 9999 once in UTC (`0001-01-01T00:00+01:00`).
    """
    text = text.strip()
    age = _AGE.match(text.lower())
    if age:
        try:
            return now.astimezone(UTC) - int(age.group(1)) * _UNITS[age.group(2)]
        except (OverflowError, ValueError) as error:  # ValueError: int()'s digit limit
            raise OutOfRange(text) from error
    if not text or not text[0].isdigit():
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:
        raise OutOfRange(text) from error


def _shown(value: Any) -> str:
    shown = repr(str(value))
    return shown if len(shown) <= 40 else shown[:36] + "...'"


class Moment(click.ParamType):
    """A click type: the option's text becomes an ISO 8601 UTC string."""

    name = "time"

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if isinstance(value, datetime):
            moment: datetime | None = value.astimezone(UTC)
        else:
            try:
                moment = parse(str(value), self.clock())
            except OutOfRange:
                self.fail(f"{_shown(value)} is out of range: give {RANGE}", param, ctx)
        if moment is None:
            self.fail(f"{_shown(value)} is not a time: give {FORMS}", param, ctx)
        return moment.isoformat()

    def get_metavar(self, param: click.Parameter) -> str:
        return "TIME"


def check_range(since: str | None, until: str | None) -> None:
    """A usage error when --since is not before --until (both converted by Moment)."""
    if since is None or until is None:
        return
    if datetime.fromisoformat(since) >= datetime.fromisoformat(until):
        raise click.UsageError(f"--since ({since}) must be before --until ({until})")
