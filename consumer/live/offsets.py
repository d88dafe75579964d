"""Per-partition offset tracking: commit only the highest contiguous settled offset.

Batches complete out of order (several requests in flight, bisection, DLQ writes); an offset is
committable only when it and every offset consumed before it on its partition are settled
(delivered, skipped or dead-lettered and acknowledged). A plain class: no Kafka, no clock.

Records are tracked by `Span`: the records of one partition that came consecutively in one
consume batch. A batch of events settles a span with one count (`settle_span`) rather than one
call per offset; only a span settled in parts (skips, dead letters, a span shared by two
batches) keeps the offsets settled ahead of its first unsettled one.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field

TopicPartitionKey = tuple[str, int]


@dataclass(slots=True, eq=False)
class Span:
    key: TopicPartitionKey  # shared by every span of the partition
    offsets: range | list[int]  # increasing; a range unless offsets are missing (compaction...)
    left: int  # records not settled yet
    state: _PartitionState  # the tracker's partition it belongs to (stale after a revoke)
    settled: set[int] | None = None  # offsets settled one by one, past `cursor`
    cursor: int = 0  # index in `offsets` of the first record not known to be settled


@dataclass(slots=True)
class _PartitionState:
    key: TopicPartitionKey
    spans: deque[Span] = field(default_factory=deque)  # not wholly settled, or behind one
    next_commit: int | None = None  # committable position (last contiguous settled + 1)
    committed: int | None = None  # last position handed to commit()
    end_seen: int | None = None  # end of the partition when last read to EOF


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[TopicPartitionKey, _PartitionState] = {}

    def assign(self, key: TopicPartitionKey) -> None:
        self._partitions.setdefault(key, _PartitionState(key))

    def forget(self, key: TopicPartitionKey) -> None:
        """Drop a revoked or lost partition: late settlements for it are ignored."""
        self._partitions.pop(key, None)

    def _state(self, key: TopicPartitionKey) -> _PartitionState:
        state = self._partitions.get(key)
        if state is None:
            state = self._partitions[key] = _PartitionState(key)
        return state

    def key(self, topic: str, partition: int) -> TopicPartitionKey:
        """The partition's key, one tuple shared by all its records."""
        return self._state((topic, partition)).key

    def consumed_span(self, key: TopicPartitionKey, offsets: range | list[int]) -> Span:
        """Record consumed offsets (increasing, after any consumed before on the partition)."""
        state = self._state(key)
        span = Span(state.key, offsets, len(offsets), state)
        state.spans.append(span)
        return span

    def consumed(self, key: TopicPartitionKey, offset: int) -> Span:
        """Record one consumed offset."""
        return self.consumed_span(key, range(offset, offset + 1))

    def settle_span(self, span: Span) -> None:
        """Every record of the span not settled yet is settled."""
        if not span.left:
            return
        span.left = 0
        span.settled = None
        self._advance_from(span)

    def settle_offset(self, span: Span, offset: int) -> None:
        """One record of the span is settled (a second settlement of it changes nothing)."""
        if not span.left:
            return
        offsets = span.offsets
        index = offset - offsets[0] if type(offsets) is range else bisect_left(offsets, offset)
        if index < span.cursor or index >= len(offsets) or offsets[index] != offset:
            return
        settled = span.settled
        if settled is None:
            settled = span.settled = set()
        elif offset in settled:
            return
        settled.add(offset)
        span.left -= 1
        self._advance_from(span)

    def settle(self, key: TopicPartitionKey, offset: int) -> None:
        """Settle one offset by its coordinates (when its span is not at hand)."""
        state = self._partitions.get(key)
        if state is None:
            return
        for span in state.spans:
            if span.offsets[-1] >= offset:
                self.settle_offset(span, offset)
                return

    def _advance_from(self, span: Span) -> None:
        """After a settlement in `span`: only the head span of a partition still tracked can
        move the position."""
        state = span.state
        if state.spans[0] is span and self._partitions.get(state.key) is state:
            self._advance(state)

    def _advance(self, state: _PartitionState) -> None:
        """The head span changed: move the position over what is settled from it on."""
        spans = state.spans
        while spans:
            head = spans[0]
            if not head.left:
                spans.popleft()
                state.next_commit = head.offsets[-1] + 1
                continue
            settled = head.settled
            if settled:
                offsets = head.offsets
                cursor = head.cursor
                while offsets[cursor] in settled:  # the last offset is unsettled: left > 0
                    settled.discard(offsets[cursor])
                    cursor += 1
                if cursor != head.cursor:
                    head.cursor = cursor
                    state.next_commit = offsets[cursor - 1] + 1
            return
        self._apply_end(state)

    def reached_end(self, key: TopicPartitionKey, end: int) -> None:
        """The partition was read up to `end` (EOF). Once nothing before it is unsettled, the
        position may move to `end`, past offsets that never arrive as records (transaction
        markers, compaction)."""
        state = self._partitions.get(key)
        if state is not None:
            state.end_seen = max(end, state.end_seen or 0)
            self._apply_end(state)

    def end_seen(self, key: TopicPartitionKey) -> int | None:
        """Where the partition was last read to its end (None: not yet)."""
        state = self._partitions.get(key)
        return state.end_seen if state else None

    @staticmethod
    def _apply_end(state: _PartitionState) -> None:
        if state.end_seen is None or state.spans:
            return
        if state.next_commit is None or state.end_seen > state.next_commit:
            state.next_commit = state.end_seen

    def pending(self, key: TopicPartitionKey) -> int:
        """Consumed records at or past the committable position."""
        state = self._partitions.get(key)
        if state is None or not state.spans:
            return 0
        return sum(len(span.offsets) for span in state.spans) - state.spans[0].cursor

    def pending_total(self) -> int:
        return sum(self.pending(key) for key in self._partitions)

    def committable(
        self, keys: list[TopicPartitionKey] | None = None
    ) -> dict[TopicPartitionKey, int]:
        """Positions that advanced since the last `mark_committed`."""
        result: dict[TopicPartitionKey, int] = {}
        for key, state in self._partitions.items():
            if keys is not None and key not in keys:
                continue
            if state.next_commit is not None and state.next_commit != state.committed:
                result[key] = state.next_commit
        return result

    def mark_committed(self, positions: dict[TopicPartitionKey, int]) -> None:
        for key, position in positions.items():
            state = self._partitions.get(key)
            if state is not None and (state.committed is None or position > state.committed):
                state.committed = position

    def position(self, key: TopicPartitionKey) -> int | None:
        """The committable position of a partition (None before anything settled)."""
        state = self._partitions.get(key)
        return state.next_commit if state else None

    def committed_position(self, key: TopicPartitionKey) -> int | None:
        """The last position committed through this tracker (None: nothing yet)."""
        state = self._partitions.get(key)
        return state.committed if state else None
