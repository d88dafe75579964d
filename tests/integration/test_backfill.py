"""`capi-consumer backfill` end to end: the real CLI as a subprocess, the mock broker (which has
no `offsets_for_times`), the real sandbox over 127.0.0.1."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from consumer.avro.decoding import Decoder
from consumer.cli.backfill import BackfillRange
from consumer.cli.produce import produce_events
from consumer.devtools.embedded_broker import EmbeddedBroker
from consumer.devtools.samples import DAY_MS, generate_events
from consumer.sandbox.server import SandboxThread
from tests.integration.conftest import (
    as_config,
    committed_offsets,
    consumer_config,
    end_offsets,
    read_dlq,
    read_topic,
    run_cli,
    start_cli,
    stats,
    stored_ids,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

Key = tuple[str, int]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def produce(raw: dict[str, Any], topic: str, events: list[dict[str, Any]]) -> None:
    assert produce_events(as_config(raw), topic, events).produced == len(events)


def event_ids_by_position(
    broker: EmbeddedBroker, raw: dict[str, Any], topic: str
) -> dict[tuple[int, int], str]:
    """(partition, offset) → the event id stored there, read back from the broker."""
    decoder = Decoder(as_config(raw).schema_settings)
    messages = read_topic(broker, topic)
    events = decoder.decode_batch([m.value() for m in messages])
    return {
        (m.partition(), m.offset()): e["context"]["event_id"]
        for m, e in zip(messages, events, strict=True)
    }


def backfill(config: Path, *args: str, timeout: float = 60) -> dict[str, Any]:
    """Run the CLI; its stdout (not a terminal) is the final report as one JSON object."""
    result = run_cli("backfill", "--config", str(config), *args, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = orjson.loads(result.stdout.strip().splitlines()[-1])
    return report


def with_timestamps(
    events: list[dict[str, Any]], first_ms: int, step_ms: int
) -> list[dict[str, Any]]:
    """Event time (hence record time) = first_ms + i * step_ms, as epoch ms."""
    for index, event in enumerate(events):
        event["context"]["event_timestamp"] = first_ms + index * step_ms
    return events


def commit_live_offsets(broker: EmbeddedBroker, group: str, topic: str, offset: int) -> None:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, offset) for p in range(4)], asynchronous=False
        )
    finally:
        consumer.close()


def test_offset_range_delivers_exactly_the_range_and_leaves_the_live_group_alone(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group, dlq = names("events"), names("live"), names("dlq")
    raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
    config = write_config(tmp_path / "c.yaml", raw)
    produce(raw, topic, generate_events(240, seed=11, now_ms=now_ms()))
    positions = event_ids_by_position(broker, raw, topic)
    commit_live_offsets(broker, group, topic, 3)
    live_before = committed_offsets(broker, group, [topic])

    # Dry run of one listed partition: maps, sends nothing, commits nothing, masks the sample.
    dry = backfill(
        config, "--from-offset", f"{topic}:1:0", "--to-offset", f"{topic}:1:4", "--dry-run"
    )
    assert (dry["dry_run"], dry["read"], dry["mapped"], dry["delivered"]) == (True, 4, 4, 0)
    assert stats(sandbox)["stored"] == 0
    assert len(dry["sample"]) == 4
    for event in dry["sample"]:  # every sample event has a device IP and user agent
        assert (event["user"]["ip_address"], event["user"]["user_agent"]) == ("***", "***")
        assert event.get("oppref", "***") == "***"
    dry_group = f"{dry['group']}-dry-run"
    assert set(committed_offsets(broker, dry_group, [topic]).values()) == {-1001}
    assert set(committed_offsets(broker, dry["group"], [topic]).values()) == {-1001}

    report = backfill(config, "--from-offset", "5", "--to-offset", "30")
    expected = {event_id for (_, offset), event_id in positions.items() if 5 <= offset < 30}
    assert set(stored_ids(sandbox)) == expected
    assert report["read"] == report["delivered"] == len(expected)
    assert report["complete"] is True
    assert report["group"] == f"{group}-backfill-{report['run_id']}"
    assert committed_offsets(broker, group, [topic]) == live_before
    ends = end_offsets(broker, [topic])
    assert committed_offsets(broker, report["group"], [topic]) == {
        key: min(30, high) for key, high in ends.items()
    }

    # The same command again is the same run: already complete, nothing re-sent.
    again = backfill(config, "--from-offset", "5", "--to-offset", "30")
    assert (again["run_id"], again["resumed"], again["total"]) == (report["run_id"], True, 0)
    assert stats(sandbox)["stored"] == len(expected)


def test_time_range_and_the_7_day_window_on_a_broker_without_offsets_for_times(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group, dlq = names("events"), names("live"), names("dlq")
    raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
    config = write_config(tmp_path / "c.yaml", raw)
    now = now_ms()
    recent = with_timestamps(generate_events(300, seed=12, now_ms=now), now - 3_600_000, 1000)
    expired = with_timestamps(generate_events(20, seed=13, now_ms=now), now - 8 * DAY_MS, 1000)
    produce(raw, topic, recent + expired)
    recent_ids = {e["context"]["event_id"] for e in recent}
    expired_ids = {e["context"]["event_id"] for e in expired}

    # Up front, without sending: how much of the range is past the window.
    dry = backfill(config, "--from-beginning", "--dry-run")
    assert dry["up_front"] == {"records": 320, "in_time_range": 320, "too_old": 20}
    assert dry["skipped"] == {"timestamp_out_of_window": 20}
    assert dry["mapped"] == 300
    assert stats(sandbox)["stored"] == 0

    # Record time in [from, to): events 100..199 exactly (the mock broker answers -1 to
    # offsets_for_times, so the range is read from the beginning and filtered on the client).
    from_ms, to_ms = now - 3_600_000 + 100_000, now - 3_600_000 + 200_000
    report = backfill(config, "--from-time", str(from_ms), "--to-time", str(to_ms))
    in_range = {e["context"]["event_id"] for e in recent[100:200]}
    assert set(stored_ids(sandbox)) == in_range
    assert report["delivered"] == report["up_front"]["in_time_range"] == 100
    assert report["filtered"] == 220

    # Everything: expired events are skipped and counted, none reaches the API or the DLQ.
    everything = backfill(config, "--from-beginning")
    assert everything["up_front"]["too_old"] == 20
    assert everything["skipped"] == {"timestamp_out_of_window": 20}
    assert everything["delivered"] == 300
    stored = set(stored_ids(sandbox))
    assert stored == recent_ids
    assert not stored & expired_ids
    assert read_dlq(broker, dlq) == []


def test_kill_9_mid_backfill_then_the_same_command_resumes_with_its_snapshot(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group, dlq = names("events"), names("live"), names("dlq")
    raw = consumer_config(
        broker, sandbox.url, [topic], group, dlq, kafka={"consume_batch_size": 50}
    )
    config = write_config(tmp_path / "c.yaml", raw)
    first = generate_events(600, seed=14, now_ms=now_ms())
    produce(raw, topic, first)

    process = start_cli(
        "backfill", "--config", str(config), "--from-beginning", "--max-events-per-second", "100"
    )
    try:
        run_group = wait_for(
            lambda: _backfill_group_with_commits(broker, group, topic),
            30,
            "a first backfill commit",
            interval=0.2,
        )
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    delivered_before_kill = stats(sandbox)["stored"]
    assert 0 < delivered_before_kill < len(first)  # the kill landed mid-run

    # Arrived after the snapshot: the resumed run must not chase them.
    late = generate_events(50, seed=15, now_ms=now_ms())
    produce(raw, topic, late)

    report = backfill(config, "--from-beginning")  # same range, same run id; no rate limit
    assert report["group"] == run_group
    assert report["resumed"] is True
    assert report["complete"] is True
    stored = set(stored_ids(sandbox))
    assert {e["context"]["event_id"] for e in first} <= stored
    assert not stored & {e["context"]["event_id"] for e in late}
    assert report["read"] == report["total"] < len(first)  # from its commits, not the start


def _backfill_group_with_commits(broker: EmbeddedBroker, live_group: str, topic: str) -> str | None:
    group = f"{live_group}-backfill-{BackfillRange(topics=(topic,), from_beginning=True).run_id()}"
    positions = committed_offsets(broker, group, [topic])
    return group if any(p > 0 for p in positions.values()) else None
