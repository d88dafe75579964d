"""The inspector's ring, counters and privacy rules (the page is tested in a browser in
tests/integration/test_inspector.py)."""

from __future__ import annotations

import hashlib

import orjson

from consumer.live.batching import Pending
from consumer.observability.inspector import Inspector, api_error_field, private_view

EMAIL_HASH = hashlib.sha256(b"ada@example.com").hexdigest()


def pending(event_id: str, **extra: object) -> Pending:
    event = {"id": event_id, "type": "order_created", **extra}
    return Pending.alone(orjson.dumps(event), 0, ("t", 0))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ring_is_bounded_newest_first_and_counts_are_not_capped() -> None:
    clock = Clock()
    inspector = Inspector(3, clock)
    inspector.delivered("p", [pending(f"e{i}") for i in range(5)])
    clock.now += 1
    inspector.record("skipped", pixel="p", event_id=7, event_type=None, reason="unmapped_event")
    shown = inspector.snapshot()
    assert [event["id"] for event in shown["events"]] == ["7", "e4", "e3"]
    assert shown["counts"] == {
        "delivered": 5,
        "rejected_by_api": 0,
        "dead_lettered": 0,
        "skipped": 1,
    }
    assert shown["events"][0]["at_ms"] == 1_001_000
    assert set(shown["events"][1]) == {
        "at_ms", "pixel", "id", "type", "outcome", "reason", "field", "status", "payload", "message"
    }  # fmt: skip


def test_routine_events_kept_per_second_are_bounded_rejections_never() -> None:
    clock = Clock()
    inspector = Inspector(10, clock)
    for _ in range(3):
        inspector.delivered("p", [pending(f"e{i}") for i in range(8)])
    kept = inspector.snapshot()["events"]
    assert len(kept) == 10  # one second's allowance
    inspector.sent("rejected_by_api", "p", [pending("bad")], "rejected_by_api", "id", 400, "x")
    assert inspector.snapshot()["events"][0]["id"] == "bad"
    assert inspector.snapshot()["counts"]["delivered"] == 24
    clock.now += 1
    inspector.delivered("p", [pending("next")])
    assert inspector.snapshot()["events"][0]["id"] == "next"


def test_private_view_masks_every_clear_identity() -> None:
    event = {
        "id": "o1",
        "oppref": "opp-secret",
        "source_url": "https://user:pw@shop.example.com/p?email=a%40b.c#x",
        "user": {
            "emails_sha256": [EMAIL_HASH],
            "countries": ["US"],
            "cities": ["paris"],
            "postal_codes": ["75002"],
            "ip_address": "203.0.113.9",
            "user_agent": "Mozilla/5.0",
            "obref": "ob-secret",
        },
        "data": {"amount": 2599, "currency": "USD"},
    }
    view = private_view(event)
    assert view == {
        "id": "o1",
        "oppref": "***",
        "source_url": "https://shop.example.com/p",
        "user": {
            "emails_sha256": [EMAIL_HASH[:8] + "…"],
            "countries": ["US"],
            "cities": "***",
            "postal_codes": "***",
            "ip_address": "***",
            "user_agent": "***",
            "obref": "***",
        },
        "data": {"amount": 2599, "currency": "USD"},
    }
    assert event["oppref"] == "opp-secret"  # the event itself is left as it was


def test_private_view_masks_identities_where_a_malformed_event_puts_them() -> None:
    """What the API rejects (the sandbox's page shows it) may carry identities anywhere: only
    known non-identity envelope keys are shown, and only real digests are cut, not masked."""
    event = {
        "id": "o2",
        "user": "jane@doe.example",
        "email": "jane@doe.example",
        "ip_address": "203.0.113.9",
        "source_url": "https://shop.example.com/account/jane@doe.example/orders?x=1",
    }
    assert private_view(event) == {
        "id": "o2",
        "user": "***",
        "email": "***",
        "ip_address": "***",
        "source_url": "https://shop.example.com/account/[redacted]/orders",
    }
    clear_in_hash = {"user": {"emails_sha256": ["jane.doe@example.com", EMAIL_HASH]}}
    assert private_view(clear_in_hash)["user"] == {"emails_sha256": ["***", EMAIL_HASH[:8] + "…"]}


def test_failing_field_of_an_api_error() -> None:
    assert api_error_field("events[0].data.contents[2].quantity must be an integer") == (
        "data.contents[2].quantity"
    )
    assert api_error_field("[{'loc': ['body', 'events', 0], 'msg': 'events[0].id bad'}]") == "id"
    assert api_error_field("Missing required field: events") is None
    assert api_error_field(None) is None
