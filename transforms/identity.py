"""User identity: normalize as the API documents, then SHA-256 (UTF-8, lowercase hex).

Every function takes one raw CA value and returns the output value, or None when the value is
unusable: invalid identity values are dropped, never errors.
"""

from __future__ import annotations

import importlib
import re
import string
import unicodedata
from collections.abc import Callable
from functools import partial
from hashlib import sha256 as _openssl_sha256
from typing import TYPE_CHECKING, Any, Final

from transforms.codes import COUNTRY_ALPHA2, COUNTRY_ALPHA3_TO_ALPHA2
from transforms.paths import COMPILED

if TYPE_CHECKING:
    from _hashlib import HASH


def _native(name: str) -> Any:
    """A function of the C extension (transforms/_sha256_hex.c), when it was built: one call
    instead of encode + hash object + `hexdigest`, with the CPU's SHA extensions or AVX2."""
    try:
        return getattr(importlib.import_module("transforms._sha256_hex"), name)
    except ImportError:  # pragma: no cover - built without a C compiler
        return None


def _builtin_sha256() -> Callable[[bytes], HASH]:
    """CPython's own SHA-256 (the same digest), else hashlib's (OpenSSL).

    For identity-sized inputs the built-in costs ~25 % less per call than OpenSSL's through
    hashlib, mostly context set-up; five hashes per event make that worth a lookup. The module
    is `_sha256` up to Python 3.11, `_sha2` since 3.12.
    """
    for module in ("_sha256", "_sha2"):
        try:
            builtin: Callable[[bytes], HASH] = importlib.import_module(module).sha256
        except (ImportError, AttributeError):  # pragma: no cover - other builds
            continue
        return builtin
    return _openssl_sha256  # pragma: no cover


sha256: Final = _builtin_sha256()
# Called as a function: compiled, this skips the method's lookup on every hash.
_HEXDIGEST: Final[Callable[[HASH], str]] = type(sha256(b"")).hexdigest
NATIVE_SHA256_HEX: Final[Callable[[str], str | None] | None] = _native("sha256_hex")
_NATIVE_SHA256_HEX_MANY: Final[Callable[[list[str]], list[str | None]] | None] = _native(
    "sha256_hex_many"
)

# Every character Python counts as whitespace (all of them live in the Basic Multilingual Plane).
_WHITESPACE: Final = "".join(chr(code) for code in range(0x10000) if chr(code).isspace())
_PHONE_SEPARATORS: Final = str.maketrans("", "", _WHITESPACE + "().-")
_NAME_NOISE: Final = str.maketrans("", "", _WHITESPACE + string.punctuation)
_ASCII_NAME_NOISE: Final = bytes(code for code in _NAME_NOISE if code < 128)
_HEX_DIGITS: Final = frozenset(string.hexdigits)
_POSTAL_CODE: Final = re.compile(r"[A-Za-z0-9 -]{1,32}")
_IPV4_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4: Final = re.compile(rf"{_IPV4_OCTET}(?:\.{_IPV4_OCTET}){{3}}")
_HEXTETS: Final = re.compile(r"[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,7}")
GEO_TEXT_MAX: Final = 128


def sha256_hex(text: str | None) -> str | None:
    """SHA-256 of the UTF-8 bytes, lowercase hex; None for None and for text that is not valid
    Unicode. Compiled readers call it on a `normalize_*` result (transforms/compiled.py)."""
    if text is None:
        return None
    if NATIVE_SHA256_HEX is not None:
        return NATIVE_SHA256_HEX(text)
    return hashlib_sha256_hex(text)


def sha256_hex_many(texts: list[str]) -> list[str | None]:
    """`sha256_hex` of each text, in one call (an event's identities: with AVX2, eight
    one-block messages are compressed for about the instructions of one)."""
    if _NATIVE_SHA256_HEX_MANY is not None:
        return _NATIVE_SHA256_HEX_MANY(texts)
    return [hashlib_sha256_hex(text) for text in texts]


def hashlib_sha256_hex(text: str) -> str | None:
    """`sha256_hex` by hashlib: the reference, and what is used without the C extension."""
    try:
        return _HEXDIGEST(sha256(text.encode()))
    except UnicodeEncodeError:  # lone surrogates cannot be UTF-8
        return None


def hashed(normalize: Callable[[object], str | None]) -> Callable[[object], str | None]:
    """A converter: `normalize`, then SHA-256 of the result."""
    # `sha256_hex`, inlined: this runs for every identity field of every event.
    digest = hashlib_sha256_hex if NATIVE_SHA256_HEX is None else NATIVE_SHA256_HEX

    def convert(value: object) -> str | None:
        normalized = normalize(value)
        return None if normalized is None else digest(normalized)

    return convert


def prehashed(value: object) -> str | None:
    """A value already hashed by the producer: 64 hex digits, any case → lower case."""
    if isinstance(value, str):
        value = value.strip()
        if len(value) == 64 and _HEX_DIGITS.issuperset(value):
            return value.lower()
    return None


def normalize_email(value: object) -> str | None:
    """Trim, lower case; exactly one `@` with text on both sides."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    # Not `partition`: its three strings and tuple cost more than the checks.
    if email.count("@") != 1 or email.startswith("@") or email.endswith("@"):
        return None
    return email


def normalize_phone(value: object) -> str | None:
    """Drop whitespace ( ) . -, a leading `+`, then leading zeros; 8–15 ASCII digits remain."""
    if not isinstance(value, str):
        return None
    # The usual number is digits already, with or without its `+`.
    bare = value[1:] if value[:1] == "+" else value
    if bare.isdigit() and bare.isascii():
        bare = bare.lstrip("0")
        return bare if 8 <= len(bare) <= 15 else None
    # Chained replace is several times faster than translate for the usual ASCII separators.
    digits = value.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
    digits = digits.replace(".", "")
    if not digits.isascii():
        digits = digits.translate(_PHONE_SEPARATORS)  # other whitespace (no-break space, ...)
    if digits[:1] == "+":
        digits = digits[1:]
    digits = digits.lstrip("0")
    if 8 <= len(digits) <= 15 and digits.isascii() and digits.isdigit():
        return digits
    return None


def normalize_external_id(value: object) -> str | None:
    """Trim only (case and every other character kept); integers as decimal strings."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def normalize_name(value: object) -> str | None:
    """NFC, lower case, no whitespace or ASCII punctuation; non-ASCII letters are kept."""
    if not isinstance(value, str):
        return None
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    value = value.lower()
    if value.isalpha():  # the usual case: nothing to remove
        return value
    if value.isascii():  # `bytes.translate` deletes twice as fast as the `str` table
        return value.encode().translate(None, _ASCII_NAME_NOISE).decode() or None
    return value.translate(_NAME_NOISE) or None


def normalize_country(value: object) -> str | None:
    """ISO 3166-1 alpha-2, upper case; alpha-3 codes are converted; anything else is dropped."""
    if not isinstance(value, str) or not value.isascii():  # "ß".upper() is "SS"
        return None
    code = value.strip().upper()
    if len(code) == 2:
        return code if code in COUNTRY_ALPHA2 else None
    return COUNTRY_ALPHA3_TO_ALPHA2.get(code)


def normalize_geo_text(value: object) -> str | None:
    """City or region: trim, lower case, at most 128 characters."""
    if not isinstance(value, str):
        return None
    return value.strip().lower()[:GEO_TEXT_MAX] or None


def normalize_postal_code(value: object) -> str | None:
    """Trim; ASCII letters, digits, spaces and hyphens only; 1–32 characters (zeros kept)."""
    if not isinstance(value, str):
        return None
    code = value.strip()
    if code.isalnum() and code.isascii() and len(code) <= 32:  # the usual code, without regex
        return code
    return code if _POSTAL_CODE.fullmatch(code) else None


def normalize_ip(value: object) -> str | None:
    """A valid IPv4 or IPv6 address (no zone index), as given (trimmed)."""
    if not isinstance(value, str):
        return None
    address = value.strip()
    if _ipv4(address) or is_ipv6(address):
        return address
    return None


def _ipv4(address: str) -> bool:
    """`_IPV4.fullmatch(address)`: compiled, the loop (`_is_ipv4`); interpreted, the pattern."""
    return _is_ipv4(address) if COMPILED else _IPV4.fullmatch(address) is not None


def _is_ipv4(address: str) -> bool:
    """`_IPV4.fullmatch(address)` as a loop over the characters: compiled, several times cheaper
    than the pattern; interpreted, slower (so used only compiled)."""
    dots = digits = octet = 0
    for index in range(len(address)):
        code = ord(address[index])  # compiled: the code point read in place, no 1-char str
        if 48 <= code <= 57:  # an ASCII digit
            if digits and not octet:  # after a leading zero
                return False
            octet = octet * 10 + code - 48
            digits += 1
            if octet > 255:
                return False
        elif code == 46 and digits and dots < 3:  # a dot ending an octet
            dots += 1
            digits = octet = 0
        else:
            return False
    return dots == 3 and digits > 0


def is_ipv6(address: str) -> bool:
    """RFC 4291 text form, as `ipaddress.IPv6Address` accepts it but without a zone index (a
    property test holds them equal); several times faster, and a fifth of events carry one."""
    if "." in address:  # an IPv4 tail: the last two groups
        head, colon, ipv4 = address.rpartition(":")
        if not colon or not _ipv4(ipv4):
            return False
        address = head + ":0:0"
    head, double_colon, tail = address.partition("::")
    if not double_colon:
        return _hextets(address) == 8
    groups = 0
    for part in (head, tail):
        if part:
            count = _hextets(part)
            if count < 0:
                return False
            groups += count
    return groups <= 7  # `::` stands for at least one group


def _hextets(text: str) -> int:
    """How many groups `text` has when it matches `_HEXTETS` (1 to 8 groups of 1 to 4 hex
    digits, colon-separated), else -1. Compiled, a loop over the characters (several times
    cheaper than the pattern); interpreted, the pattern (cheaper there)."""
    if COMPILED:
        return _hextets_loop(text)
    return text.count(":") + 1 if _HEXTETS.fullmatch(text) else -1


def _hextets_loop(text: str) -> int:
    groups = 1
    run = 0  # hex digits in the current group
    for index in range(len(text)):
        code = ord(text[index])
        if 48 <= code <= 57 or 65 <= code <= 70 or 97 <= code <= 102:  # 0-9 A-F a-f
            run += 1
            if run > 4:
                return -1
        elif code == 58 and run:  # a colon ending a group
            groups += 1
            run = 0
        else:
            return -1
    return groups if run and groups <= 8 else -1


def non_blank(value: object) -> str | None:
    """A string with something other than whitespace in it, trimmed."""
    if isinstance(value, str):
        return value.strip() or None
    return None


def opaque(value: object) -> str | None:
    """An opaque reference (`oppref`, `obref`): a non-blank string, passed byte for byte."""
    if isinstance(value, str) and value.strip():
        return value
    return None


def cookie_reader(name: str) -> Callable[[object], str | None]:
    """A reader of the first non-empty value of cookie `name` in a `name=value; ...` string."""
    # A positional `partial` adds no Python frame to `cookie_value`'s (a closure would).
    return partial(cookie_value, name)


def cookie_value(name: str, cookie: object, needle: str = "") -> str | None:
    """The first non-empty value of cookie `name` in `cookie`, a `name=value; ...` string.
    `needle`: `name + "="`, when the caller has it (one string fewer per call)."""
    if not isinstance(cookie, str):
        return None
    # Fast path: `name=value` as browsers write it, at the start or after `; `: one scan.
    needle = needle or name + "="
    start = cookie.find(needle)
    if start == 0 or (start > 0 and cookie[start - 1] in "; "):
        end = cookie.find(";", start)
        value = cookie[start + len(needle) : None if end == -1 else end].strip()
        if value:
            return value
    elif start == -1 and name not in cookie:
        return None
    for pair in cookie.split(";"):
        key, equals, value = pair.partition("=")
        if equals and key.strip() == name:
            value = value.strip()
            if value:
                return value
    return None
