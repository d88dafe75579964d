"""Money in ISO 4217 minor units: exact decimals, half up away from zero, every currency."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from transforms.codes import CURRENCY_EXPONENTS
from transforms.money import (
    INT64_MAX,
    currency_exponent,
    exact_minor_units,
    parse_currency,
    to_minor_units,
    to_whole_number,
)

MINOR_UNIT_CURRENCIES = sorted(
    code for code, exponent in CURRENCY_EXPONENTS.items() if exponent is not None
)


@pytest.mark.parametrize(
    ("currency", "major", "minor"),
    [
        ("USD", 25.99, 2599),
        ("USD", "25.99", 2599),
        ("USD", 1.005, 101),
        ("USD", 0.125, 13),
        ("USD", -0.005, -1),
        ("USD", "-0.004", 0),
        ("USD", 19, 1900),
        ("JPY", 8900, 8900),
        ("JPY", 8900.5, 8901),
        ("JPY", "8900.49", 8900),
        ("KWD", 1.5, 1500),
        ("KWD", "0.0005", 1),
        ("BHD", 1.2345, 1235),
        ("BHD", "12.3444", 12344),
        ("CLF", 0.12345, 1235),
        ("CLF", "1.00005", 10001),
        ("CLF", 2, 20000),
        ("USD", Decimal("2.345"), 235),
        ("USD", 1e16, 10**18),
    ],
)
def test_minor_units(currency: str, major: object, minor: int) -> None:
    exponent = currency_exponent(currency)
    assert exponent is not None
    assert to_minor_units(major, exponent) == minor


def test_currency_exponents_come_from_iso_4217() -> None:
    assert [currency_exponent(code) for code in ("USD", "JPY", "KWD", "BHD", "CLF")] == [
        2,
        0,
        3,
        3,
        4,
    ]
    # No minor unit: such a currency can be named but cannot carry an amount.
    assert parse_currency(" xau ") == "XAU"
    assert currency_exponent("XAU") is None


@pytest.mark.parametrize(
    "value",
    [
        "1e3",
        "1,5",
        ".5",
        "5.",
        "NaN",
        "Infinity",
        "",
        " ",
        "--1",
        "0x10",
        "١٢",
        True,
        None,
        [1],
        {},
        float("nan"),
        float("inf"),
        1e30,
        "9" * 5000,
    ],
)
def test_not_an_amount(value: object) -> None:
    assert to_minor_units(value, 2) is None


@pytest.mark.parametrize("code", ["US$", "XYZ", "usdollar", "", 840, None, "DEM"])
def test_not_a_currency(code: object) -> None:
    assert parse_currency(code) is None


@pytest.mark.parametrize(
    ("value", "whole"),
    [(2, 2), (2.0, 2), ("2", 2), (" -3 ", -3), ("4.00", 4), (0, 0)],
)
def test_whole_numbers(value: object, whole: int) -> None:
    assert to_whole_number(value) == whole


@pytest.mark.parametrize(
    "value", [2.5, "2.5", "two", True, None, "", float("nan"), 1e300, "9" * 30]
)
def test_not_whole_numbers(value: object) -> None:
    assert to_whole_number(value) is None


@settings(max_examples=300, deadline=None)
@given(
    currency=st.sampled_from(MINOR_UNIT_CURRENCIES),
    digits=st.integers(min_value=-(10**15), max_value=10**15),
    data=st.data(),
)
def test_every_currency_converts_exactly(currency: str, digits: int, data: st.DataObject) -> None:
    """A decimal amount with at most the currency's decimals is an exact integer of minor units,
    whether it arrives as a numeric string, a Decimal or (when a float holds it) a JSON float."""
    exponent = currency_exponent(currency)
    assert exponent is not None
    places = data.draw(st.integers(min_value=0, max_value=exponent))
    amount = Decimal(digits).scaleb(-places)
    expected = int(amount.scaleb(exponent))
    # Beyond a signed 64-bit integer the contract answers None (the API takes int64 amounts).
    assume(abs(expected) <= 2**63 - 1)
    assert to_minor_units(str(amount), exponent) == expected
    assert to_minor_units(amount, exponent) == expected
    as_float = float(amount)
    if Decimal(repr(as_float)) == amount:  # the float spells exactly this decimal
        assert to_minor_units(as_float, exponent) == expected


@settings(max_examples=300, deadline=None)
@given(
    value=st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-1e9, max_value=1e9),
    exponent=st.sampled_from(sorted({e for e in CURRENCY_EXPONENTS.values() if e is not None})),
)
def test_float_shortcut_agrees_with_the_decimal_digits(value: float, exponent: int) -> None:
    exact = exact_minor_units(value, exponent)
    if exact is not None and abs(exact) > INT64_MAX:
        exact = None
    assert to_minor_units(value, exponent) == exact


@settings(max_examples=200, deadline=None)
@given(
    whole=st.integers(min_value=0, max_value=10**12),
    fraction=st.text(alphabet="0123456789", min_size=1, max_size=12),
    negative=st.booleans(),
)
def test_rounding_is_half_up_away_from_zero(whole: int, fraction: str, negative: bool) -> None:
    text = f"{'-' if negative else ''}{whole}.{fraction}"
    magnitude = int(Decimal(f"{whole}.{fraction}").scaleb(2).to_integral_value("ROUND_HALF_UP"))
    assert to_minor_units(text, 2) == (-magnitude if negative else magnitude)
    assert math.isclose(to_minor_units(text, 2) or 0, float(Decimal(text) * 100), abs_tol=0.5)
