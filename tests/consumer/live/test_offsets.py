"""The offset tracker: any completion order commits the highest contiguous settled offset."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.live.offsets import OffsetTracker

TP = ("events", 0)


def contiguous_position(consumed: list[int], settled: set[int]) -> int | None:
    position = None
    for offset in consumed:
        if offset not in settled:
            break
        position = offset + 1
    return position


def test_out_of_order_settlement_waits_for_the_gap() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.consumed(TP, offset)
    tracker.settle(TP, 1)
    tracker.settle(TP, 2)
    assert tracker.committable() == {}
    tracker.settle(TP, 0)
    assert tracker.committable() == {TP: 3}
    tracker.mark_committed({TP: 3})
    assert tracker.committable() == {}
    tracker.settle(TP, 4)
    assert tracker.committable() == {}
    tracker.settle(TP, 3)
    assert tracker.committable() == {TP: 5}


def test_gaps_in_offsets_are_fine() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 15, 20):  # compacted topic, transaction markers
        tracker.consumed(TP, offset)
    for offset in (20, 15, 11, 10):
        tracker.settle(TP, offset)
    assert tracker.committable() == {TP: 21}
    assert tracker.pending(TP) == 0


def test_forgotten_partition_ignores_late_settlements() -> None:
    tracker = OffsetTracker()
    tracker.consumed(TP, 0)
    tracker.forget(TP)
    tracker.settle(TP, 0)
    assert tracker.committable() == {}
    assert tracker.pending_total() == 0


def test_duplicate_settlement_is_harmless() -> None:
    tracker = OffsetTracker()
    for offset in range(3):
        tracker.consumed(TP, offset)
    tracker.settle(TP, 0)
    tracker.settle(TP, 0)
    tracker.settle(TP, 2)
    assert tracker.committable() == {TP: 1}
    tracker.settle(TP, 1)
    assert tracker.committable() == {TP: 3}


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    offsets=st.lists(
        st.integers(min_value=0, max_value=10_000), min_size=1, max_size=80, unique=True
    ),
)
def test_any_completion_order_commits_the_highest_contiguous_settled(
    data: st.DataObject, offsets: list[int]
) -> None:
    consumed = sorted(offsets)
    tracker = OffsetTracker()
    for offset in consumed:
        tracker.consumed(TP, offset)
    order = data.draw(st.permutations(consumed))
    cut = data.draw(st.integers(min_value=0, max_value=len(order)))
    settled: set[int] = set()
    committed: int | None = None
    for offset in order[:cut]:
        tracker.settle(TP, offset)
        settled.add(offset)
        expected = contiguous_position(consumed, settled)
        assert tracker.position(TP) == expected
        positions = tracker.committable()
        if positions:
            position = positions[TP]
            # never past an unsettled offset, never backwards
            assert all(o in settled for o in consumed if o < position)
            assert committed is None or position > committed
            tracker.mark_committed(positions)
            committed = position
    assert tracker.pending(TP) == len(consumed) - len(
        [o for o in consumed if committed is not None and o < committed]
    )


@settings(max_examples=100, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["consume", "settle", "revoke"]), st.integers(0, 2)),
        max_size=120,
    )
)
def test_interleaved_partitions_and_revokes_never_commit_unsettled(
    events: list[tuple[str, int]],
) -> None:
    tracker = OffsetTracker()
    next_offset = [0, 0, 0]
    unsettled: list[set[int]] = [set(), set(), set()]
    for action, partition in events:
        key = ("events", partition)
        if action == "consume":
            tracker.consumed(key, next_offset[partition])
            unsettled[partition].add(next_offset[partition])
            next_offset[partition] += 1
        elif action == "settle" and unsettled[partition]:
            offset = max(unsettled[partition])
            unsettled[partition].discard(offset)
            tracker.settle(key, offset)
        elif action == "revoke":
            tracker.forget(key)
            unsettled[partition].clear()
        for (_, p), position in tracker.committable().items():
            assert all(o >= position for o in unsettled[p])


def test_end_of_partition_moves_past_offsets_that_never_arrive() -> None:
    tracker = OffsetTracker()
    tracker.assign(TP)
    tracker.consumed(TP, 0)
    tracker.consumed(TP, 1)
    tracker.reached_end(TP, 3)  # offset 2 is a transaction marker: never a record
    assert tracker.committable() == {}  # 0 and 1 are not settled yet
    tracker.settle(TP, 1)
    tracker.settle(TP, 0)
    assert tracker.committable() == {TP: 3}


def test_end_of_an_empty_partition_is_committable() -> None:
    tracker = OffsetTracker()
    tracker.assign(TP)
    tracker.reached_end(TP, 42)  # retention removed everything before 42
    assert tracker.committable() == {TP: 42}


# -- spans: a consume batch's run of records of one partition, settled by count ---------------


def test_a_span_settled_at_once_commits_past_its_last_offset() -> None:
    tracker = OffsetTracker()
    first = tracker.consumed_span(TP, range(0, 100))
    second = tracker.consumed_span(TP, [100, 101, 105])  # 102-104: transaction markers
    tracker.settle_span(second)
    assert tracker.position(TP) is None  # the first span is not settled yet
    tracker.settle_offset(first, 0)
    tracker.settle_offset(first, 1)
    assert tracker.position(TP) == 2
    tracker.settle_span(first)
    assert tracker.committable() == {TP: 106}
    assert tracker.pending(TP) == 0


def test_a_span_of_a_forgotten_partition_settles_nothing() -> None:
    tracker = OffsetTracker()
    stale = tracker.consumed_span(TP, range(0, 10))
    tracker.forget(TP)
    tracker.assign(TP)
    fresh = tracker.consumed_span(TP, range(0, 10))  # read again by this member
    tracker.settle_span(stale)
    tracker.settle_offset(stale, 0)
    assert tracker.position(TP) is None
    tracker.settle_span(fresh)
    assert tracker.position(TP) == 10


# One partition's life: spans consumed (with gaps between and inside), settled whole or offset by
# offset (some twice), in any order.
_span_sizes = st.lists(
    st.tuples(st.integers(1, 6), st.booleans(), st.integers(0, 3)), min_size=1, max_size=12
)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), sizes=_span_sizes)
def test_spans_settled_in_any_way_commit_what_per_offset_tracking_would(
    data: st.DataObject, sizes: list[tuple[int, bool, int]]
) -> None:
    tracker = OffsetTracker()
    consumed: list[int] = []
    spans = []
    offset = 0
    for length, dense, gap in sizes:
        offset += gap  # offsets that never arrive as records
        offsets: range | list[int]
        if dense:
            offsets = range(offset, offset + length)
        else:
            offsets = [offset + 2 * i for i in range(length)]
        spans.append(tracker.consumed_span(TP, offsets))
        consumed += offsets
        offset = offsets[-1] + 1
    steps = data.draw(
        st.lists(st.tuples(st.integers(0, len(spans) - 1), st.integers(0, 6)), max_size=40)
    )
    settled: set[int] = set()
    for index, which in steps:
        span = spans[index]
        if which == 0:  # the rest of the span, as a batch delivered whole
            settled.update(span.offsets)
            tracker.settle_span(span)
        else:  # one record, maybe settled before (a duplicate)
            one = span.offsets[which % len(span.offsets)]
            settled.add(one)
            tracker.settle_offset(span, one)
        expected = contiguous_position(consumed, settled)
        assert tracker.position(TP) == expected
        assert tracker.pending(TP) == len(
            [o for o in consumed if expected is None or o >= expected]
        )
