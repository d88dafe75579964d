"""Credentials, tokens and personal data out of text the service did not write."""

from __future__ import annotations

import pytest

from consumer.redaction import mask_userinfo, redact_log, redact_text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer sk-abc123def456ghi", "sk-abc123def456ghi"),
        ("bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "eyJhbGciOiJIUzI1NiJ9.e30.x"),
        ("the key sk-proj-AAAABBBBCCCC is invalid", "sk-proj-AAAABBBBCCCC"),
        ('{"api_key": "k-987654"}', "k-987654"),
        ("password=hunter2&user=x", "hunter2"),
        ("basic.auth.user.info: bob:pw", "bob:pw"),
        ("https://bob:pw@registry.example.com/subjects", "bob:pw"),
        ("user jane.doe+tag@example.co.uk is unknown", "jane.doe+tag@example.co.uk"),
        ("call +1-555-123-4567", "555-123-4567"),
        ("call (555) 123-4567", "123-4567"),
        ("appelez le 06 12 34 56 78", "06 12 34 56 78"),
        ("client 203.0.113.9 refused", "203.0.113.9"),
        ("client 2001:db8::1: refused", "2001:db8::1"),
    ],
)
def test_each_kind_is_redacted(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


def test_what_explains_the_error_is_kept() -> None:
    text = "data.contents[0].amount must be an integer; timestamp_ms 1764999605325 at 12:30:45"
    assert redact_text(text) == text


def test_logs_keep_infrastructure_addresses_but_not_credentials() -> None:
    line = "Connect to ipv4#10.0.0.5:9092 failed; registry https://u:p@10.0.0.6:8081 said 401"
    assert redact_log(line) == (
        "Connect to ipv4#10.0.0.5:9092 failed; registry https://***@10.0.0.6:8081 said 401"
    )
    assert mask_userinfo("https://registry.example.com") == "https://registry.example.com"
