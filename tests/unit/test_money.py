from __future__ import annotations

from decimal import Decimal

import pytest
from hookline.errors import MalformedEvent
from hookline.money import currency_code, to_minor


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [("19.99", "USD", 1999), (100.5, "BRL", 10050), (0.1, "usd", 10), ("500", "JPY", 500),
     ("1.234", "KWD", 1234), (7, "EUR", 700), (Decimal("0.30"), "EUR", 30)],
)  # fmt: skip
def test_to_minor(value: object, currency: str, minor: int) -> None:
    assert to_minor(value, currency, "amount") == minor


@pytest.mark.parametrize("value", ["19.999", "-1", "abc", None, True, "NaN", "Infinity", [1]])
def test_to_minor_refuses(value: object) -> None:
    with pytest.raises(MalformedEvent, match="amount"):
        to_minor(value, "USD", "amount")


def test_currency_code() -> None:
    assert currency_code("usd", "currency") == "USD"
    for bad in ("US", "dollars", 840, None, "U$D"):
        with pytest.raises(MalformedEvent, match="currency"):
            currency_code(bad, "currency")


def test_an_amount_with_a_huge_exponent_is_refused_before_it_costs_cpu() -> None:
    # int() of 1e999997 builds a 3.3-million-bit integer: seconds of CPU per attempt.
    with pytest.raises(MalformedEvent, match="larger than any amount"):
        to_minor("1e999997", "USD", "total_price")
    assert to_minor("92233720368547758.07", "USD", "total") == 9223372036854775807
    with pytest.raises(MalformedEvent, match="larger than any amount"):
        to_minor("100000000000000000.00", "USD", "total")


@pytest.mark.parametrize("value", ["1e999999", "-1e999999", "9e999998"])
def test_an_amount_past_decimal_s_range_once_scaled_is_malformed_not_a_crash(value: str) -> None:
    # Scaled to cents it overflows Decimal's exponent: decimal.Overflow, not InvalidOperation.
    with pytest.raises(MalformedEvent, match="larger than any amount"):
        to_minor(value, "USD", "total")
