"""The batcher: count, bytes and linger bounds; splitting; revoked partitions."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.live.batching import Batch, Batcher, Pending


def item(n: int, size: int = 50, partition: int = 0) -> Pending:
    event = {"id": f"e{n}", "pad": "x" * size}
    return Pending.alone(orjson.dumps(event), 0, ("t", partition), n)


def test_flushes_at_max_events() -> None:
    batcher = Batcher(max_events=3, max_bytes=1_000_000, linger_s=10)
    assert batcher.add("p", item(0), 0.0) == []
    assert batcher.add("p", item(1), 0.0) == []
    [batch] = batcher.add("p", item(2), 0.0)
    assert [i.offset for i in batch.items] == [0, 1, 2]
    assert len(batcher) == 0


def test_flushes_before_exceeding_max_bytes() -> None:
    batcher = Batcher(max_events=1000, max_bytes=1024, linger_s=10)
    ready: list[Batch] = []
    for n in range(10):
        ready += batcher.add("p", item(n, size=200), 0.0)
    assert ready
    for batch in ready:
        body = batch.body("src", validate_only=False)
        assert len(body) <= 1024
        assert batch.size >= len(body)
        assert orjson.loads(body)["integration_source"] == "src"


def test_batches_are_per_pixel_and_linger() -> None:
    batcher = Batcher(max_events=1000, max_bytes=1_000_000, linger_s=1.0)
    batcher.add("a", item(0), 0.0)
    batcher.add("b", item(1), 0.5)
    assert batcher.due(0.9) == []
    [due] = batcher.due(1.0)
    assert due.pixel_id == "a"
    assert batcher.next_deadline() == 1.5
    assert [b.pixel_id for b in batcher.drain()] == ["b"]


def test_body_is_valid_json_with_every_event() -> None:
    batch = Batch("p")
    for n in range(5):
        batch.items.append(item(n))
    decoded = orjson.loads(batch.body(None, validate_only=True))
    assert [e["id"] for e in decoded["events"]] == [f"e{n}" for n in range(5)]
    assert decoded["validate_only"] is True
    assert "integration_source" not in decoded


@pytest.mark.parametrize("events", [0, 1, 2, 5])
@pytest.mark.parametrize(("source", "validate_only"), [(None, False), ("src", True)])
def test_body_is_the_envelope_around_the_payloads_joined(
    events: int, source: str | None, validate_only: bool
) -> None:
    batch = Batch("p", [item(n) for n in range(events)])
    payloads = [i.payload for i in batch.items]
    expected = {"events": [orjson.loads(p) for p in payloads]}
    if source:
        expected["integration_source"] = source
    if validate_only:
        expected["validate_only"] = True
    body = batch.body(source, validate_only)
    assert orjson.loads(body) == expected
    assert body.startswith(b'{"events":[')
    assert [i.payload for i in batch.items] == payloads  # the items are left as they were
    assert batch.body(source, validate_only) == body


def test_split_halves_keep_every_item_once() -> None:
    batch = Batch("p", [item(n) for n in range(7)])
    left, right = batch.split()
    assert [i.offset for i in left.items + right.items] == list(range(7))
    assert left.size + right.size > batch.size - 1 - 200  # sizes are recomputed, not copied


def test_remove_partitions_drops_only_revoked_events() -> None:
    batcher = Batcher(max_events=1000, max_bytes=1_000_000, linger_s=10)
    for n in range(6):
        batcher.add("p", item(n, partition=n % 2), 0.0)
    dropped = batcher.remove_partitions({("t", 1)})
    assert sorted(item.offset for item in dropped) == [1, 3, 5]
    [batch] = batcher.drain()
    assert {i.source for i in batch.items} == {("t", 0)}


def _add_one_by_one(batcher: Batcher, pixel: str, item: Pending, now: float) -> list[Batch]:
    """The reference: the batcher's rule for a single event, written out."""
    ready: list[Batch] = []
    batch = batcher._open.get(pixel)
    added = len(item.payload) + 1
    if batch is not None and batch.size + added > batcher.max_bytes:
        ready.append(batcher._open.pop(pixel))
        batch = None
    if batch is None:
        batch = batcher._open[pixel] = Batch(pixel, opened_at=now)
    batch.items.append(item)
    batch.size += added
    if len(batch.items) >= batcher.max_events or batch.size >= batcher.max_bytes:
        ready.append(batcher._open.pop(pixel))
    return ready


@settings(max_examples=300, deadline=None)
@given(
    max_events=st.integers(1, 6),
    max_bytes=st.integers(160, 700),
    calls=st.lists(st.lists(st.integers(0, 300), max_size=12), max_size=6),
)
def test_extend_makes_the_batches_adding_one_by_one_would(
    max_events: int, max_bytes: int, calls: list[list[int]]
) -> None:
    bulk = Batcher(max_events, max_bytes, linger_s=10)
    single = Batcher(max_events, max_bytes, linger_s=10)
    n = 0
    for sizes in calls:
        items = []
        for size in sizes:
            items.append(item(n, size))
            n += 1
        got = bulk.extend("p", items, 0.0)
        expected = [b for i in items for b in _add_one_by_one(single, "p", i, 0.0)]
        assert [(b.items, b.size) for b in got] == [(b.items, b.size) for b in expected]
    assert [(b.items, b.size) for b in bulk.drain()] == [(b.items, b.size) for b in single.drain()]
