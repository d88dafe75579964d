"""`source_url`: an http(s) URL with a host, without user info and, by default, without query and
fragment (they carry e-mails and click ids). Everything else is kept byte for byte."""

from __future__ import annotations

import re
from typing import Final

from transforms.paths import COMPILED

_SCHEME: Final = r"(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?://)"
_USER_INFO: Final = r"(?:[^/?#]*@)?"  # user info (`user:password@`): credentials, never sent
_HOST_TO_PATH: Final = (
    r"(?P<host>(?:\[[0-9A-Fa-f:.]+\]|[^\s\x00-\x1f\x7f/?#@\[\]\\<>^`{|}\":]+)(?::[0-9]*)?)"
    r"(?P<path>(?:/[^?#]*)?)"
    r"(?=[?#]|\Z)"
)
_URL_UP_TO_PATH: Final = re.compile(_SCHEME + _USER_INFO + _HOST_TO_PATH)
# The same without user info: what the pattern above matches when the URL holds no `@`.
_URL_WITHOUT_USER_INFO: Final = re.compile(_SCHEME + _HOST_TO_PATH)


def sanitize_source_url(value: object, keep_query: bool = False) -> str | None:
    """The URL to send, or None when `value` is not an http(s) URL with a host."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if "@" not in url:  # the usual URL: nothing to cut out, so the result is one slice of it
        # Compiled, the usual host (ASCII letters, digits, dots, hyphens) under a lower-case
        # scheme is checked without the pattern: the URL up to its first `?` or `#` is then what
        # the pattern matches. (Interpreted, these steps cost more than the pattern.)
        start = 0
        if COMPILED:
            start = 8 if url.startswith("https://") else 7 if url.startswith("http://") else 0
        if start and _plain_host_end(url, start) > start:
            cut = url.find("?", start)
            fragment = url.find("#", start)
            if fragment >= 0 and (cut < 0 or fragment < cut):
                cut = fragment
            return url if keep_query or cut < 0 else url[:cut]
        short = _URL_WITHOUT_USER_INFO.match(url)
        if short is None:
            return None
        return url if keep_query else url[: short.end()]
    match = _URL_UP_TO_PATH.match(url)
    if match is None:
        return None
    scheme, host, path = match.groups()
    if keep_query:
        return scheme + host + path + url[match.end() :]
    return scheme + host + path


def _plain_host_end(url: str, start: int) -> int:
    """Where the host starting at `start` ends (at `/`, `?`, `#` or the end), or -1 when it has a
    character other than ASCII letters, digits, dots and hyphens. A loop for mypyc to compile."""
    for index in range(start, len(url)):
        code = ord(url[index])
        if code in (47, 63, 35):  # / ? #  (compiled: compared one by one, no set lookup)
            return index
        if not (97 <= code <= 122 or 48 <= code <= 57 or 65 <= code <= 90 or code in (45, 46)):
            return -1
    return len(url)
