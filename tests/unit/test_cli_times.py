"""--since/--until: the forms accepted, the ones refused, and the range check."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest
from hookline.cli.times import Moment, check_range, parse

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01", "2026-03-01T00:00:00+00:00"),
        ("2026-03-01T14:30", "2026-03-01T14:30:00+00:00"),
        ("2026-03-01 14:30:05", "2026-03-01T14:30:05+00:00"),
        ("2026-03-01T14:30:00Z", "2026-03-01T14:30:00+00:00"),
        ("2026-03-01T14:30:00+02:00", "2026-03-01T12:30:00+00:00"),
        ("2026-03-01T14:30:00.250-05:00", "2026-03-01T19:30:00.250000+00:00"),
        ("90s", "2026-03-10T11:58:30+00:00"),
        ("30m", "2026-03-10T11:30:00+00:00"),
        ("2h", "2026-03-10T10:00:00+00:00"),
        ("1d", "2026-03-09T12:00:00+00:00"),
        ("1w", "2026-03-03T12:00:00+00:00"),
        (" 2H ", "2026-03-10T10:00:00+00:00"),
    ],
)
def test_accepted_forms_become_iso_utc(text: str, expected: str) -> None:
    assert Moment(lambda: NOW).convert(text, None, None) == expected


@pytest.mark.parametrize(
    "text", ["garbage", "yesterday", "", "now", "2h ago", "-1d", "1y", "2026-13-01", "12:00"]
)
def test_anything_else_is_a_usage_error_naming_the_forms(text: str) -> None:
    assert parse(text, NOW) is None
    with pytest.raises(click.BadParameter) as raised:
        Moment(lambda: NOW).convert(text, None, None)
    assert raised.value.exit_code == 2
    message = raised.value.format_message()
    assert f"{text!r} is not a time" in message
    assert "2026-01-31" in message
    assert "30m, 2h, 1d, 1w" in message


def test_since_must_come_before_until() -> None:
    check_range("2026-03-01T00:00:00+00:00", "2026-03-02T00:00:00+00:00")
    check_range(None, "2026-03-02T00:00:00+00:00")
    for until in ("2026-03-01T00:00:00+00:00", "2026-02-28T00:00:00+00:00"):
        with pytest.raises(click.UsageError, match=r"--since .* must be before --until"):
            check_range("2026-03-01T00:00:00+00:00", until)


@pytest.mark.parametrize(
    "text",
    [
        "999999d",
        "9999999999d",
        "9" * 5000 + "d",  # past int()'s digit limit
        "0001-01-01T00:00+01:00",
        "9999-12-31T23:00-05:00",
    ],
)
def test_a_time_outside_the_calendar_is_a_usage_error_not_a_traceback(text: str) -> None:
    with pytest.raises(click.BadParameter) as raised:
        Moment(lambda: NOW).convert(text, None, None)
    message = raised.value.format_message()
    assert "is out of range: give a time between 0001-01-01 and 9999-12-31 UTC" in message
    assert len(message) < 200


def test_the_calendar_s_own_ends_are_times() -> None:
    assert Moment(lambda: NOW).convert("0001-01-01T01:00+01:00", None, None) == (
        "0001-01-01T00:00:00+00:00"
    )
    assert Moment(lambda: NOW).convert("9999-12-31T23:00", None, None) == (
        "9999-12-31T23:00:00+00:00"
    )
