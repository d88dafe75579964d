"""Per-pixel batches bounded by event count, serialized bytes and linger time.

Each event is serialized once with orjson when it is added, so the byte bound is exact and a
batch can be split (bisection, 413) by re-joining parts without serializing again. A plain
class: time is passed in.
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from consumer.live.offsets import OffsetTracker, Span, TopicPartitionKey

if TYPE_CHECKING:
    from consumer.live.dlq import Origin


# `{"events":[` + `]` + `,"integration_source":"..."}` and commas: reserve room for the envelope.
_ENVELOPE_BYTES = 160


class Pending(NamedTuple):
    """One mapped event on its way: its serialized form and where it came from.

    Only the bytes are kept: the mapped dict is freed right after serialization, while it is
    still in the CPU cache (keeping thousands in flight cost memory and cache misses at every
    settle). The rare paths that need it (a 400 to bisect, validation, redaction) parse it back.
    A tuple: built in one call per event, its coordinates shared with its span.
    """

    payload: bytes
    span: Span  # the consumed records it is one of (its partition and how it settles)
    timestamp_ms: int
    record: Any  # the Kafka message (its value and key go to the DLQ if the API rejects it)
    origin: Origin | None = None  # set when replaying the DLQ: the event's first coordinates
    identity: AbstractSet[str] = frozenset()  # its identity fields, for coverage metrics

    @property
    def event(self) -> dict[str, Any]:
        """The mapped event, parsed from `payload` (orjson round-trips it exactly)."""
        event: dict[str, Any] = orjson.loads(self.payload)
        return event

    @property
    def source(self) -> TopicPartitionKey:
        return self.span.key

    @property
    def offset(self) -> int:
        if self.record is None:  # `alone`
            return self.span.offsets[0]
        offset: int = self.record.offset()
        return offset

    @classmethod
    def alone(
        cls, payload: bytes, timestamp_ms: int, key: TopicPartitionKey = ("", 0), offset: int = 0
    ) -> Pending:
        """An event outside the live loop (`config check`, tests): a span of its own."""
        return cls(payload, OffsetTracker().consumed(key, offset), timestamp_ms, None)


@dataclass(slots=True)
class Batch:
    pixel_id: str
    items: list[Pending] = field(default_factory=list)
    size: int = _ENVELOPE_BYTES
    opened_at: float = 0.0
    # Its events per span, counted once when it is sent (`Settler.sent`).
    spans: dict[Span, int] | None = None
    oldest_ms: int = 0  # its oldest event's timestamp, set when it is sent (gauges)

    @property
    def payload_bytes(self) -> int:
        """The sum of its payloads' lengths (from `size`, kept exact as events come and go)."""
        return self.size - _ENVELOPE_BYTES - len(self.items)

    def split(self) -> tuple[Batch, Batch]:
        middle = len(self.items) // 2
        return self.with_items(self.items[:middle]), self.with_items(self.items[middle:])

    def with_items(self, items: list[Pending]) -> Batch:
        size = _ENVELOPE_BYTES + sum(len(item.payload) + 1 for item in items)
        return Batch(self.pixel_id, items, size, self.opened_at)

    def body(self, integration_source: str | None, validate_only: bool) -> bytes:
        tail = b"]"
        if integration_source:
            tail += b',"integration_source":"' + integration_source.encode() + b'"'
        if validate_only:
            tail += b',"validate_only":true'
        tail += b"}"
        if not self.items:
            return b'{"events":[' + tail
        # One join, the envelope glued to the first and last events: the body (about 1 MB) is
        # copied once, not once per `+`.
        parts = list(map(_payload, self.items))
        parts[0] = b'{"events":[' + parts[0]
        parts[-1] += tail
        return b",".join(parts)


_payload = operator.attrgetter("payload")


class Batcher:
    def __init__(self, max_events: int, max_bytes: int, linger_s: float) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.linger_s = linger_s
        self._open: dict[str, Batch] = {}

    def add(self, pixel_id: str, item: Pending, now: float) -> list[Batch]:
        """Add one event; returns the batches that became full (usually none)."""
        return self.extend(pixel_id, [item], now)

    def extend(self, pixel_id: str, items: list[Pending], now: float) -> list[Batch]:
        """Add events in order, as `add` one by one would; returns the batches that became
        full. Sizes are summed in C and each batch takes its share in one slice."""
        ready: list[Batch] = []
        # ends[i]: the bytes items[:i] add to a batch (each payload and its comma).
        payload_ends = [0, *accumulate(map(len, map(_payload, items)))]
        ends = list(map(operator.add, payload_ends, range(len(payload_ends))))
        start = 0
        count = len(items)
        while start < count:
            batch = self._open.get(pixel_id)
            if batch is None:
                batch = self._open[pixel_id] = Batch(pixel_id, opened_at=now)
            # As many as fit in bytes and in count; an empty batch takes at least one.
            fit = bisect_right(ends, ends[start] + self.max_bytes - batch.size, start) - 1 - start
            take = min(fit, self.max_events - len(batch.items), count - start)
            if take <= 0:
                if batch.items:
                    ready.append(self._open.pop(pixel_id))
                    continue
                take = 1
            batch.items += items[start : start + take]
            batch.size += ends[start + take] - ends[start]
            start += take
            if (
                start < count  # the next one does not fit
                or len(batch.items) >= self.max_events
                or batch.size >= self.max_bytes
            ):
                ready.append(self._open.pop(pixel_id))
        return ready

    def due(self, now: float) -> list[Batch]:
        """Batches whose linger time has passed."""
        expired = [p for p, b in self._open.items() if now - b.opened_at >= self.linger_s]
        return [self._open.pop(pixel_id) for pixel_id in expired]

    def drain(self) -> list[Batch]:
        """Every open batch (shutdown, revoke, caught-up)."""
        batches = list(self._open.values())
        self._open.clear()
        return batches

    def remove_partitions(self, keys: set[TopicPartitionKey]) -> list[Pending]:
        """Drop unsent events of revoked partitions (they will be redelivered); return them."""
        dropped: list[Pending] = []
        for pixel_id, batch in list(self._open.items()):
            kept = [item for item in batch.items if item.source not in keys]
            dropped += [item for item in batch.items if item.source in keys]
            if kept:
                self._open[pixel_id] = batch.with_items(kept)
            else:
                del self._open[pixel_id]
        return dropped

    def next_deadline(self) -> float | None:
        if not self._open:
            return None
        return min(batch.opened_at for batch in self._open.values()) + self.linger_s

    def __len__(self) -> int:
        return sum(len(batch.items) for batch in self._open.values())
