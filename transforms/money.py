"""Exact numbers: money in ISO 4217 minor units, and whole-number quantities.

A JSON number means its decimal text: `25.99` is exactly 25.99, and `1.005` USD is 101 cents
(rounding is half up, away from zero: −0.005 USD → −1), never what binary floating point would
make of them. The digits of a float are its shortest decimal representation (`repr`).

One shortcut, exact by construction: for a float below 2**40 minor units, `value × 10**exponent`
in floating point is within 0.001 of the exact decimal product, so when it lies within 0.49 of an
integer, that integer is the exact half-up result (no tie is near). Otherwise, or when in doubt,
the decimal digits decide. A property test checks both paths agree.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from math import floor
from typing import Final

from transforms.codes import CURRENCY_EXPONENTS

# Output integers must fit a signed 64-bit JSON integer (what every JSON encoder here handles).
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_MAX_DIGITS: Final = 19

_POWERS_OF_TEN: Final[tuple[int, ...]] = tuple(10**exponent for exponent in range(10))
_FAST_LIMIT: Final = float(2**40)
_FAST_MARGIN: Final = 0.49
_DECIMAL_TEXT: Final = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?")
_WHOLE_TEXT: Final = re.compile(r"[+-]?[0-9]+(?:\.0+)?")


# The spellings producers actually send (`EUR`, `eur`), looked up without strip() and upper().
_CURRENCY_SPELLINGS: Final[dict[str, str]] = {
    spelling: code for code in CURRENCY_EXPONENTS for spelling in (code, code.lower())
}


def parse_currency(value: object) -> str | None:
    """Trimmed, upper-cased active ISO 4217 alpha-3 code, else None."""
    if type(value) is str and (known := _CURRENCY_SPELLINGS.get(value)) is not None:
        return known
    if isinstance(value, str):
        code = value.strip().upper()
        if code in CURRENCY_EXPONENTS:
            return code
    return None


# A plain dict copy (never changed): compiled, a proxy's `get` is a generic method call.
_EXPONENTS: Final[dict[str, int | None]] = dict(CURRENCY_EXPONENTS)


def currency_exponent(code: str) -> int | None:
    """Minor-unit digits of an active code; None for codes with no minor unit (XAU, XDR, ...)."""
    return _EXPONENTS.get(code)


def to_minor_units(value: object, exponent: int) -> int | None:
    """Major units (number or `[+-]digits[.digits]` string) → integer minor units, else None."""
    minor: int | None
    if type(value) is float:  # the usual price: first, and without isinstance calls
        scaled = value * _POWERS_OF_TEN[exponent]
        if -_FAST_LIMIT < scaled < _FAST_LIMIT:  # False for NaN and infinities
            # Not `round`: a generic call when compiled. Both give the same integer within the
            # margin, the only case that returns (a tie is 0.5 away).
            nearest = floor(scaled + 0.5)
            if -_FAST_MARGIN <= scaled - nearest <= _FAST_MARGIN:
                return nearest
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        minor = value * 10**exponent
    elif isinstance(value, float):
        minor = exact_minor_units(value, exponent)
    elif isinstance(value, str | Decimal):  # Decimal: the Avro `decimal` logical type
        if isinstance(value, Decimal):
            if not value.is_finite():
                return None
            value = format(value, "f")
        match = _DECIMAL_TEXT.fullmatch(value.strip())
        if match is None:
            return None
        sign, whole, fraction = match.groups()
        minor = _scale(sign == "-", whole, fraction or "", exponent)
    else:
        return None
    if minor is None or not INT64_MIN <= minor <= INT64_MAX:
        return None
    return minor


def exact_minor_units(value: float, exponent: int) -> int | None:
    """A float through its decimal digits only (what the shortcut above must agree with)."""
    if not math.isfinite(value):
        return None
    text = repr(value)  # the shortest decimal that reads back as this float
    if "e" in text:  # 1e+16, 5e-07: spell out the digits
        text = format(Decimal(text), "f")
    whole, _, fraction = text.lstrip("-").partition(".")
    return _scale(text[0] == "-", whole, fraction, exponent)


def _scale(negative: bool, whole: str, fraction: str, exponent: int) -> int | None:
    """Decimal digits → minor units, rounding half up (away from zero) on the magnitude."""
    whole = whole.lstrip("0")
    if len(whole) > _MAX_DIGITS:
        return None
    minor = int(whole + fraction[:exponent].ljust(exponent, "0") or "0")
    if len(fraction) > exponent and fraction[exponent] >= "5":
        minor += 1
    return -minor if negative else minor


def to_whole_number(value: object) -> int | None:
    """An integer, or a number/numeric string with no fractional part (`2.0`, `"2"`), else None."""
    number: int
    if type(value) is int:  # the usual quantity
        return value if INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = int(value)  # a plain int, also for int subclasses
    elif isinstance(value, float):
        if not value.is_integer():  # also False for NaN and infinities
            return None
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if _WHOLE_TEXT.fullmatch(text) is None:
            return None
        whole = text.partition(".")[0]
        if len(whole.lstrip("+-").lstrip("0")) > _MAX_DIGITS:
            return None
        number = int(whole)
    else:
        return None
    return number if INT64_MIN <= number <= INT64_MAX else None
