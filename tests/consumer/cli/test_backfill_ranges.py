"""Backfill ranges without a broker: argument parsing, run ids, start/end resolution, the stored
snapshot, resumption bounds, masking and progress output."""

from __future__ import annotations

import argparse
import io
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.cli import build_parser
from consumer.cli.backfill import (
    MAX_METADATA_BYTES,
    BackfillRange,
    OffsetSpec,
    RangeError,
    Sample,
    Snapshot,
    iso_ms,
    masked_event,
    parse_offsets,
    parse_partitions,
    parse_time_ms,
    parse_topics,
    range_from_args,
    reached_end,
    resolve_bounds,
    run_id_of,
)
from consumer.cli.progress import Progress, print_report
from consumer.live.pipeline import Summary

T = "events"


def backfill_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["backfill", "--config", "c.yaml", *extra])


# -- parsing ------------------------------------------------------------------------------------


def test_one_number_applies_to_every_partition() -> None:
    spec = parse_offsets("42", "--from-offset")
    assert spec == OffsetSpec(every=42)
    assert spec.offset_for((T, 0)) == 42
    assert spec.offset_for(("other", 7)) == 42


def test_explicit_list_is_per_partition_and_normalized() -> None:
    spec = parse_offsets(" b:1:5 , a.x-y:0:10", "--from-offset")
    assert spec.offset_for(("a.x-y", 0)) == 10
    assert spec.offset_for(("b", 1)) == 5
    assert spec.offset_for(("b", 0)) is None
    assert spec.keys() == {("a.x-y", 0), ("b", 1)}
    assert spec.normalized() == "a.x-y:0:10,b:1:5"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("-1", "non-negative"),
        ("abc", "non-negative"),
        ("t:0", "TOPIC:PARTITION:OFFSET"),
        (":0:5", "TOPIC:PARTITION:OFFSET"),
        ("t:x:5", "a partition"),
        ("t:0:5,t:0:6", "given twice"),
    ],
)
def test_bad_offsets_are_refused_with_the_option_named(text: str, fragment: str) -> None:
    with pytest.raises(RangeError, match="--to-offset") as info:
        parse_offsets(text, "--to-offset")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1764460800000", 1_764_460_800_000),
        ("2025-11-30T00:00:00Z", 1_764_460_800_000),
        ("2025-11-30T01:00:00+01:00", 1_764_460_800_000),
        ("2025-11-30T00:00:00", 1_764_460_800_000),  # no offset: UTC
        ("2025-11-30", 1_764_460_800_000),
        ("2025-11-30T00:00:00.123Z", 1_764_460_800_123),
    ],
)
def test_times_are_iso8601_or_epoch_ms(text: str, expected: int) -> None:
    assert parse_time_ms(text, "--from-time") == expected


def test_epoch_seconds_and_garbage_are_refused() -> None:
    with pytest.raises(RangeError, match="epoch seconds"):
        parse_time_ms("1764460800", "--from-time")
    with pytest.raises(RangeError, match="neither ISO-8601"):
        parse_time_ms("yesterday", "--to-time")


@given(st.integers(min_value=100_000_000_000, max_value=4_102_444_800_000))
def test_iso_rendering_round_trips(ms: int) -> None:
    rendered = iso_ms(ms)
    assert rendered is not None
    assert rendered.endswith("Z")
    assert parse_time_ms(rendered, "--from-time") == ms


def test_topics_and_partitions_lists() -> None:
    assert parse_topics("a, b,a,,") == ("a", "b")
    assert parse_partitions("2,0, 2") == frozenset({0, 2})
    with pytest.raises(RangeError):
        parse_topics(" , ")
    with pytest.raises(RangeError):
        parse_partitions("0,x")


# -- the range ----------------------------------------------------------------------------------


def test_a_start_is_required() -> None:
    with pytest.raises(RangeError, match="choose a start"):
        BackfillRange(topics=(T,), to_offset=OffsetSpec(every=5))


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--from-beginning", "--from-offset", "3"], "exclude each other"),
        (["--from-offset", "9", "--to-offset", "3"], "past --to-offset"),
        (["--from-offset", "other:0:1"], "not one of"),
        (
            ["--from-time", "2025-11-30T10:00:00Z", "--to-time", "2025-11-30T09:00:00Z"],
            "before --to-time",
        ),
        (["--from-beginning", "--topics", " , "], "no topic"),
    ],
)
def test_inconsistent_ranges_are_refused(extra: list[str], fragment: str) -> None:
    with pytest.raises(RangeError, match=fragment):
        range_from_args(backfill_args(*extra), [T])


def test_topics_default_to_the_config_and_partitions_filter() -> None:
    backfill = range_from_args(backfill_args("--from-beginning", "--partitions", "0,2"), [T])
    assert backfill.topics == (T,)
    assert [p for p in range(4) if backfill.selects((T, p))] == [0, 2]
    assert not backfill.selects(("elsewhere", 0))


def test_an_explicit_list_selects_only_the_partitions_it_names() -> None:
    backfill = range_from_args(
        backfill_args("--from-offset", f"{T}:1:5", "--to-offset", f"{T}:1:9,{T}:3:4"), [T]
    )
    assert [p for p in range(4) if backfill.selects((T, p))] == [1, 3]
    assert backfill.start((T, 1), low=0, at_time=None) == 5
    assert backfill.end((T, 1), high=100) == 9
    with pytest.raises(RangeError, match=f"no start for {T}:3"):
        backfill.start((T, 3), low=0, at_time=None)


def test_start_combines_offset_time_answer_and_retention() -> None:
    backfill = BackfillRange(
        topics=(T,), from_offset=OffsetSpec(every=10), from_time_ms=1_764_460_800_000
    )
    assert backfill.start((T, 0), low=0, at_time=None) == 10  # no answer: the offset, filtered
    assert backfill.start((T, 0), low=0, at_time=25) == 25  # the later of both
    assert backfill.start((T, 0), low=40, at_time=25) == 40  # retention already passed both
    timed = BackfillRange(topics=(T,), from_time_ms=1_764_460_800_000)
    assert timed.start((T, 0), low=3, at_time=None) == 3  # the mock broker: from the beginning


def test_end_never_passes_the_high_watermark() -> None:
    backfill = BackfillRange(topics=(T,), from_beginning=True, to_offset=OffsetSpec(every=50))
    assert backfill.end((T, 0), high=80) == 50
    assert backfill.end((T, 0), high=30) == 30
    assert BackfillRange(topics=(T,), from_beginning=True).end((T, 0), high=30) == 30


def test_run_id_depends_on_the_normalized_range_only() -> None:
    iso = range_from_args(backfill_args("--from-time", "2025-11-30T00:00:00Z"), [T])
    epoch = range_from_args(backfill_args("--from-time", "1764460800000"), [T])
    other = range_from_args(backfill_args("--from-time", "1764460800001"), [T])
    assert iso.run_id() == epoch.run_id() != other.run_id()
    assert len(iso.run_id()) == 12
    listed = range_from_args(backfill_args("--from-offset", f"{T}:1:5,{T}:0:2"), [T])
    reordered = range_from_args(backfill_args("--from-offset", f"{T}:0:2,{T}:1:5"), [T])
    assert listed.run_id() == reordered.run_id()
    rated = backfill_args("--from-time", "1764460800000", "--max-events-per-second", "5")
    assert run_id_of(rated, epoch) == epoch.run_id()  # rate and dry run do not change the run


def test_explicit_run_id_is_checked() -> None:
    backfill = BackfillRange(topics=(T,), from_beginning=True)
    assert run_id_of(backfill_args("--from-beginning", "--run-id", "fix-42"), backfill) == "fix-42"
    with pytest.raises(RangeError, match="--run-id"):
        run_id_of(backfill_args("--from-beginning", "--run-id", "a b"), backfill)


# -- snapshot and resumption --------------------------------------------------------------------


def test_snapshot_round_trips_through_commit_metadata() -> None:
    snapshot = Snapshot({(T, 0): 120, (T, 3): 0, ("b", 1): 7}, taken_at_ms=1_764_460_800_000)
    text = snapshot.encode()
    assert text is not None
    assert Snapshot.decode(text) == snapshot
    assert Snapshot.decode(None) is None
    assert Snapshot.decode("not json") is None
    assert Snapshot.decode('{"v": 1}') is None


def test_a_snapshot_too_large_for_kafka_metadata_is_not_stored() -> None:
    many = Snapshot({(f"topic-{i:03d}", p): 10**12 for i in range(40) for p in range(8)}, 1)
    assert many.encode() is None
    fits = Snapshot({(T, p): 10**12 for p in range(64)}, 1).encode()
    assert fits is not None
    assert len(fits) <= MAX_METADATA_BYTES


def _bounds(stored: Snapshot | None, positions: dict[tuple[str, int], int]) -> Any:
    marks = {(T, 0): (0, 100), (T, 1): (20, 100), (T, 2): (0, 100), (T, 3): (0, 77)}
    return resolve_bounds(
        group_id="g-backfill-x",
        topics=[T],
        marks=marks,
        starts={(T, 0): 10, (T, 1): 10, (T, 2): 100},
        fresh_end={(T, 0): 100, (T, 1): 100, (T, 2): 100},
        positions=positions,
        stored=stored,
        now_ms=5,
    )


def test_a_new_run_reads_from_its_starts_to_the_fresh_end() -> None:
    bounds = _bounds(None, {})
    assert not bounds.resumed
    assert bounds.snapshot == Snapshot({(T, 0): 100, (T, 1): 100, (T, 2): 100}, 5)
    # Partition 1 lost offsets 10..19 to retention; partition 2 has nothing to read.
    assert bounds.remaining == {(T, 0): (10, 100), (T, 1): (20, 100)}
    assert bounds.total == 170
    # Committed before the run with the snapshot: the starts of what remains, the end of a
    # partition with nothing to read, the high watermark of one outside the range.
    assert bounds.initial_positions() == {(T, 0): 10, (T, 1): 20, (T, 2): 100, (T, 3): 77}


def test_a_resumed_run_keeps_its_snapshot_and_continues_from_its_commits() -> None:
    stored = Snapshot({(T, 0): 60, (T, 1): 50, (T, 2): 100}, taken_at_ms=1)
    bounds = _bounds(stored, {(T, 0): 60, (T, 1): 30})
    assert bounds.resumed
    assert bounds.snapshot.taken_at_ms == 1
    assert bounds.remaining == {(T, 1): (30, 50)}  # partition 0 is done
    assert reached_end(bounds.remaining, {(T, 1): 50}, {(T, 1): (0, 100)})
    assert not reached_end(bounds.remaining, {(T, 1): 49}, {(T, 1): (0, 100)})
    assert reached_end(bounds.remaining, {}, {(T, 1): (55, 100)})  # retention passed the end


# -- dry-run sample -----------------------------------------------------------------------------


def test_mask_hides_clear_identifiers_and_keeps_the_rest() -> None:
    event = {
        "id": "e1",
        "oppref": "opp_123",
        "user": {
            "ip_address": "203.0.113.1",
            "user_agent": "Mozilla/5.0",
            "obref": "ob_1",
            "emails_sha256": ["ab" * 32],
        },
    }
    masked = masked_event(event)
    assert masked == {
        "id": "e1",
        "oppref": "***",
        "user": {
            "ip_address": "***",
            "user_agent": "***",
            "obref": "***",
            "emails_sha256": ["ab" * 32],
        },
    }
    assert event["oppref"] == "opp_123"  # the original is untouched
    sample = Sample(limit=2)
    for _ in range(5):
        sample.add(event)
    assert len(sample.events) == 2


# -- progress -----------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_shows_done_total_rate_and_eta() -> None:
    now = [100.0]
    stream = _Terminal()
    progress = Progress("backfill x", total=1000, stream=stream, clock=lambda: now[0])
    summary = Summary()
    progress.update(summary)
    now[0] += 2.0
    summary.read, summary.delivered, summary.skipped = 400, 390, Counter(timestamp=10)
    progress.update(summary)
    progress.close()
    last = stream.getvalue().split("\r")[-1]
    assert "400/1,000" in last
    assert "40.0%" in last
    assert "200 ev/s" in last
    assert "ETA 0:03" in last
    assert "skipped 10" in last
    assert stream.getvalue().endswith("\n")


def test_progress_off_a_terminal_is_json_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    progress = Progress("replay", total=10, stream=io.StringIO(), clock=lambda: now[0])
    summary = Summary()
    with caplog.at_level("INFO", logger="consumer.progress"):
        for read in (0, 5, 6, 10):
            summary.read = read
            progress.update(summary)
            now[0] += 3.0  # lines are at least 5 s apart: the 2nd and 4th calls are dropped
    lines = [r for r in caplog.records if r.getMessage() == "progress"]
    assert [r.__dict__["done"] for r in lines] == [0, 6]
    assert lines[-1].__dict__["total"] == 10
    assert lines[-1].__dict__["percent"] == 60.0


def test_report_is_one_json_object_off_a_terminal_and_text_on_one() -> None:
    report = {"read": 3, "skipped": {"timestamp_out_of_window": 1}, "sample": [{"id": "e"}]}
    piped = io.StringIO()
    print_report(report, piped)
    assert orjson.loads(piped.getvalue()) == report
    terminal = _Terminal()
    print_report(report, terminal)
    text = terminal.getvalue()
    assert "timestamp out of window" in text
    assert '{"id":"e"}' in text
