"""Amounts in minor units (cents), from the decimal strings some providers send."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, Overflow

from hookline.errors import MalformedEvent

# ISO 4217 currencies whose minor unit is not 1/100.
_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
    **dict.fromkeys(("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
# Below 1e19: a cheap integer; PostgreSQL's bigint (to 9.2e18) refuses the rest.
MAX_MINOR_DIGITS = 18


def currency_code(value: object, what: str) -> str:
    """An ISO 4217 code, upper-cased (orders compare currencies case-insensitively)."""
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise MalformedEvent(f"{what} is not a three-letter currency code")
    return value.upper()


def to_minor(value: object, currency: str, what: str) -> int:
    """`"19.99"` USD → 1999. Refuses negatives and more precision than the currency has."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise MalformedEvent(f"{what} is not a number")
    try:
        # str() first: Decimal(0.1) would carry the float's binary error.
        minor = Decimal(str(value)).scaleb(_EXPONENTS.get(currency.upper(), 2))
    except InvalidOperation:
        raise MalformedEvent(f"{what} is not a number") from None
    except Overflow:
        # Past Decimal's exponent range once scaled ("1e999999" dollars in cents).
        raise MalformedEvent(f"{what} is larger than any amount") from None
    # Checked before any integer is built: "1e999999" would cost seconds of CPU.
    if minor.is_finite() and minor.adjusted() > MAX_MINOR_DIGITS:
        raise MalformedEvent(f"{what} is larger than any amount")
    if not minor.is_finite() or minor != minor.to_integral_value() or minor < 0:
        raise MalformedEvent(f"{what} is not a non-negative amount in {currency.upper()}")
    return int(minor)
