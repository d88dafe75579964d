"""`source_url`: an http(s) URL with a host, without user info and, by default, without query and
fragment (they carry e-mails and click ids). Everything else is kept byte for byte."""

from __future__ import annotations

import re
from typing import Final

_URL_UP_TO_PATH: Final = re.compile(
    r"(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?://)"
    r"(?:[^/?#]*@)?"  # user info (`user:password@`): credentials, never sent
    r"(?P<host>(?:\[[0-9A-Fa-f:.]+\]|[^\s\x00-\x1f\x7f/?#@\[\]\\<>^`{|}\":]+)(?::[0-9]*)?)"
    r"(?P<path>(?:/[^?#]*)?)"
    r"(?=[?#]|\Z)"
)


def sanitize_source_url(value: object, keep_query: bool) -> str | None:
    """The URL to send, or None when `value` is not an http(s) URL with a host."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    match = _URL_UP_TO_PATH.match(url)
    if match is None:
        return None
    scheme, host, path = match.groups()
    if keep_query:
        return scheme + host + path + url[match.end() :]
    return scheme + host + path
