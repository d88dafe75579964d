"""Secrets and personal data out of text the service did not write itself: API error bodies,
library log lines, URLs from the configuration.

`redact_text` is for what is stored or shown about an event (a DLQ record's message, field and
headers, `dlq inspect`): credentials, bearer tokens, emails, phone numbers and IP addresses go.
`redact_log` is for log lines, which carry infrastructure addresses (brokers, the API) an operator
needs: credentials, bearer tokens and emails go, addresses stay.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

MASK: Final = "[redacted]"

# scheme://user:password@host → scheme://***@host
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',;]+")
_CREDENTIAL = re.compile(
    r"(?i)(\b(?:[\w.-]*(?:api[_.-]?key|apikey|token|secret|password|passwd|pwd|credentials?"
    r"|authorization|user\.info))[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&}]+)"
)
_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(
    r"\+\d[\d\s().-]{6,}\d"  # international: +33 6 12 34 56 78, +1-555-123-4567
    r"|\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b"  # (555) 123-4567, 555.123.4567
    r"|\b0\d(?:[\s.-]?\d{2}){4}\b"  # 06 12 34 56 78, 0612345678
)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?![\w])")


def mask_userinfo(text: str) -> str:
    """URLs with their user info (`https://user:pw@host`) shown as `https://***@host`."""
    return _USERINFO.sub(r"\1***@", text)


def _secrets(text: str) -> str:
    text = mask_userinfo(text)
    text = _BEARER.sub(rf"\1\2{MASK}", text)
    text = _CREDENTIAL.sub(rf"\1{MASK}", text)
    return _OPENAI_KEY.sub(MASK, text)


def _ipv6(match: re.Match[str]) -> str:
    """The candidate masked when it is an IPv6 address (a trailing `:` of the sentence kept)."""
    text = match.group(0)
    for address, rest in ((text, ""), (text[:-1], text[-1:])):
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            continue
        return MASK + rest
    return text


def redact_text(text: str) -> str:
    """Text fit for a DLQ record or a terminal: no credential, token, email, phone number or IP."""
    text = _EMAIL.sub(MASK, _secrets(text))
    text = _IPV6_CANDIDATE.sub(_ipv6, _IPV4.sub(MASK, text))
    return _PHONE.sub(MASK, text)


def redact_log(text: str) -> str:
    """A log line's text without credentials, tokens or emails (addresses are kept)."""
    return _EMAIL.sub(MASK, _secrets(text))
