"""Per-partition offset tracking: commit only the highest contiguous settled offset.

Batches complete out of order (several requests in flight, bisection, DLQ writes); an offset is
committable only when it and every offset consumed before it on its partition are settled
(delivered, skipped or dead-lettered and acknowledged). A plain class: no Kafka, no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TopicPartitionKey = tuple[str, int]


@dataclass(slots=True)
class _PartitionState:
    consumed: deque[int] = field(default_factory=deque)  # unsettled or not yet popped, in order
    settled: set[int] = field(default_factory=set)  # settled offsets still behind a gap
    next_commit: int | None = None  # committable position (last contiguous settled + 1)
    committed: int | None = None  # last position handed to commit()
    end_seen: int | None = None  # end of the partition when last read to EOF


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[TopicPartitionKey, _PartitionState] = {}

    def assign(self, key: TopicPartitionKey) -> None:
        self._partitions.setdefault(key, _PartitionState())

    def forget(self, key: TopicPartitionKey) -> None:
        """Drop a revoked or lost partition: late settlements for it are ignored."""
        self._partitions.pop(key, None)

    def consumed(self, key: TopicPartitionKey, offset: int) -> None:
        """Record a consumed offset. Offsets arrive in increasing order per partition."""
        state = self._partitions.get(key)
        if state is None:
            state = self._partitions[key] = _PartitionState()
        state.consumed.append(offset)

    def settle(self, key: TopicPartitionKey, offset: int) -> None:
        state = self._partitions.get(key)
        if state is None:
            return
        consumed = state.consumed
        if consumed and consumed[0] == offset:
            consumed.popleft()
            last = offset
            settled = state.settled
            while consumed and consumed[0] in settled:
                last = consumed.popleft()
                settled.discard(last)
            state.next_commit = last + 1
            if not consumed:
                self._apply_end(state)
        elif consumed and offset > consumed[0]:
            state.settled.add(offset)
        # else: already settled (a duplicate settlement): nothing to do

    def reached_end(self, key: TopicPartitionKey, end: int) -> None:
        """The partition was read up to `end` (EOF). Once nothing before it is unsettled, the
        position may move to `end`, past offsets that never arrive as records (transaction
        markers, compaction)."""
        state = self._partitions.get(key)
        if state is not None:
            state.end_seen = max(end, state.end_seen or 0)
            self._apply_end(state)

    @staticmethod
    def _apply_end(state: _PartitionState) -> None:
        if state.end_seen is None or state.consumed:
            return
        if state.next_commit is None or state.end_seen > state.next_commit:
            state.next_commit = state.end_seen

    def pending(self, key: TopicPartitionKey) -> int:
        state = self._partitions.get(key)
        return len(state.consumed) if state else 0

    def pending_total(self) -> int:
        return sum(len(state.consumed) for state in self._partitions.values())

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
