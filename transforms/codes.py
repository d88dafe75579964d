"""Code tables from maintained packages, loaded once at import: ISO 4217 and ISO 3166-1."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

import iso4217
import pycountry

# Active ISO 4217 alpha-3 codes → number of minor-unit digits; None where the code has no minor
# unit (XAU, XDR, XXX, ...): such a code cannot carry an amount.
CURRENCY_EXPONENTS: Final = MappingProxyType(
    {currency.code: currency.exponent for currency in iso4217.Currency}
)

# ISO 3166-1: alpha-2 codes, and alpha-3 → alpha-2.
COUNTRY_ALPHA2: Final = frozenset(country.alpha_2 for country in pycountry.countries)
COUNTRY_ALPHA3_TO_ALPHA2: Final = MappingProxyType(
    {country.alpha_3: country.alpha_2 for country in pycountry.countries}
)
