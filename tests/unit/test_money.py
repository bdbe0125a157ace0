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
