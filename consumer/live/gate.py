"""What a bounded run (backfill, DLQ replay) changes in the live loop, decided before it starts.

A `Gate` is frozen: the loop reads it, never changes it. `LIVE` is the gate of the service
itself and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from consumer.live.dlq import Origin
from consumer.live.offsets import TopicPartitionKey
from consumer.live.source import Record


@dataclass(frozen=True, slots=True)
class Gate:
    # False only for `LIVE`: no end, every record of every partition processed.
    bounded: bool = True
    # Start positions for partitions the group has no committed offset for.
    start_offsets: Mapping[TopicPartitionKey, int] = field(default_factory=dict)
    # Exclusive end offsets: records at or past them are not processed; done when all reached.
    end_offsets: Mapping[TopicPartitionKey, int] = field(default_factory=dict)
    # Only these partitions are processed (others are settled as filtered).
    partitions: frozenset[TopicPartitionKey] | None = None
    # Record-timestamp bounds [from, to) checked on every record.
    from_time_ms: int | None = None
    to_time_ms: int | None = None
    # Events past the API's 7-day window: dead-letter them, or count and skip.
    expired: Literal["dlq", "skip"] = "dlq"
    max_events_per_second: float | None = None
    dry_run: bool = False
    commit_metadata: str | None = None
    # Turns a consumed record into (value bytes to decode, origin for the DLQ) — DLQ replay.
    unwrap: Callable[[Record], tuple[bytes | None, Origin]] | None = None
    # Called with each mapped event in a dry run (a sample for the summary).
    on_dry_run_event: Callable[[dict[str, Any]], None] | None = None
    # Records it refuses are settled as filtered (DLQ replay: `--reason`).
    accept: Callable[[Record], bool] | None = None

    def admits(self, key: TopicPartitionKey, record: Record) -> bool:
        """Is this record in the run (else it is settled as filtered)?"""
        if self.partitions is not None and key not in self.partitions:
            return False
        if self.accept is not None and not self.accept(record):
            return False
        if self.from_time_ms is None and self.to_time_ms is None:
            return True
        _, timestamp = record.timestamp()
        if self.from_time_ms is not None and timestamp < self.from_time_ms:
            return False
        return self.to_time_ms is None or timestamp < self.to_time_ms

    def consume_batch_size(self, configured: int) -> int:
        """With a rate limit, small consume calls (a tenth of a second's worth) keep it smooth."""
        if not self.max_events_per_second:
            return configured
        return max(1, min(configured, int(self.max_events_per_second / 10)))


LIVE: Final = Gate(bounded=False)


class Pacer:
    """`--max-events-per-second`: how long to wait before consuming more (never with None)."""

    def __init__(self, events_per_second: float | None) -> None:
        self._rate = events_per_second
        self._next_at = 0.0

    def took(self, count: int, now: float) -> None:
        if self._rate:
            self._next_at = max(self._next_at, now) + count / self._rate

    def wait_s(self, now: float) -> float:
        return self._next_at - now
