"""Pure parts of delivery and routing: Retry-After, error messages, redaction, key rotation."""

from __future__ import annotations

import email.utils
import os
from pathlib import Path

import orjson

from consumer.config import Route
from consumer.live.batching import Pending
from consumer.live.delivery import ApiKey, _is_transient, api_message, redact, retry_after_seconds
from consumer.live.routing import Router
from transforms.paths import PathReader


def test_retry_after_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7", now=0) == 7.0
    assert retry_after_seconds(None, now=0) is None
    assert retry_after_seconds("soon", now=0) is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds(date, now=1_000_000) == 30.0


def test_fault_classes() -> None:
    transient = [0, 408, 429, 500, 502, 503, 504]
    assert all(_is_transient(status) for status in transient)
    assert not any(_is_transient(status) for status in (200, 400, 401, 403, 404, 413, 422, 501))


def test_api_messages_of_every_shape() -> None:
    assert api_message(b'{"error": {"message": "bad currency", "field": "events[3].x"}}') == (
        "events[3].x: bad currency"
    )
    assert api_message(b'{"error": "Missing required field: events"}') == (
        "Missing required field: events"
    )
    assert api_message(b"<html>oops</html>") == "<html>oops</html>"


def test_redaction_removes_raw_values_of_the_batch() -> None:
    event = {"oppref": "opp-secret", "user": {"ip_address": "203.0.113.9", "obref": "ob-secret"}}
    item = Pending.alone(orjson.dumps(event), 0, ("t", 0), 1)
    message = "invalid oppref opp-secret from 203.0.113.9 (ob-secret)"
    cleaned = redact(message, [item])
    assert "opp-secret" not in cleaned
    assert "203.0.113.9" not in cleaned
    assert "ob-secret" not in cleaned


def test_api_key_file_is_re_read_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("sk-one\n", encoding="utf-8")
    key = ApiKey(path=str(path))
    assert key.get() == "sk-one"
    path.write_text("sk-two-rotated\n", encoding="utf-8")
    os.utime(path, (1, 2))  # a different mtime even within the same clock tick
    assert key.get() == "sk-two-rotated"


def test_routes_pick_the_pixel_by_a_field_value() -> None:
    routes = [Route(field="context.site", values=["fr", "be"], pixel_id="pixel-fr")]
    paths = [("event_name",), ("context", "site")]
    router = Router(routes, "pixel-main", paths)
    assert paths == [("event_name",), ("context", "site")]  # an existing path: no new slot
    read = PathReader(paths).read
    assert router.pixel_of(read({"context": {"site": "fr"}})) == "pixel-fr"
    assert router.pixel_of(read({"context": {"site": "de"}})) == "pixel-main"
    assert router.pixel_of(read({"context": None})) == "pixel-main"
    paths = [("event_name",)]
    router = Router(routes, None, paths)
    assert paths == [("event_name",), ("context", "site")]  # the route's field is added
    assert router.pixel_of(PathReader(paths).read({})) is None
    assert router.only_pixel is None  # with routes, each event is looked at
    assert Router([], "pixel-main", paths).only_pixel == "pixel-main"


def test_redaction_covers_lists_escaped_forms_and_keeps_enumerations() -> None:
    event = {
        "type": "order_created",
        "source_url": "https://shop.example.com/a/b",
        "user": {"cities": ["san francisco"], "postal_codes": ["94107"]},
        "data": {"currency": "USD"},
    }
    item = Pending.alone(orjson.dumps(event), 0, ("t", 0), 1)
    message = (
        'order_created: city san francisco, zip 94107, url "https:\\/\\/shop.example.com\\/a\\/b"'
        " in USD"
    )
    cleaned = redact(message, [item])
    for raw in ("san francisco", "94107", "shop.example.com"):
        assert raw not in cleaned
    assert cleaned.startswith("order_created")
    assert cleaned.endswith("USD")


def test_unreadable_retry_after_is_ignored_not_raised() -> None:
    assert retry_after_seconds("²", now=0) is None
    assert retry_after_seconds("0", now=0) == 0.0
