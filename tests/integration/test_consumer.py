"""The streaming consumer end to end: the real broker, the real sandbox, no mocks."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumer.avro.decoding import Decoder
from consumer.cli.produce import produce_events
from consumer.cli.run import transforms_build
from consumer.devtools.embedded_broker import EmbeddedBroker
from consumer.devtools.samples import generate_events
from consumer.live.pipeline import Pipeline
from consumer.sandbox.server import SandboxThread
from tests.integration.conftest import (
    PIXEL,
    as_config,
    committed_offsets,
    consumer_config,
    end_offsets,
    read_dlq,
    read_topic,
    run_cli,
    sandbox_settings,
    start_cli,
    stats,
    stored_events,
    stored_ids,
    wait_for,
    write_config,
)
from transforms import Mapped, map_event

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return int(time.time() * 1000)


class Running:
    """A pipeline on a background thread (signals are the CLI's business, tested separately)."""

    def __init__(self, pipeline: Pipeline, until_caught_up: bool = True) -> None:
        self.pipeline = pipeline
        self.reason: str | None = None
        self._thread = threading.Thread(target=self._run, args=(until_caught_up,), daemon=True)
        self._thread.start()

    def _run(self, until_caught_up: bool) -> None:
        self.reason = self.pipeline.run(until_caught_up=until_caught_up)

    def stop(self) -> None:
        self.pipeline.request_stop()
        self.join()

    def join(self, timeout: float = 90) -> str | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "pipeline did not finish in time"
        return self.reason


def mapped_ids(raw: dict[str, Any], events: list[dict[str, Any]]) -> set[str]:
    """The ids of the events that map to a CAPI event under this config (what must arrive)."""
    compiled = as_config(raw).compile()
    outcomes = (map_event(event, compiled, now_ms()) for event in events)
    return {outcome.event["id"] for outcome in outcomes if isinstance(outcome, Mapped)}


def produce(raw: dict[str, Any], topic: str, events: list[dict[str, Any]]) -> None:
    report = produce_events(as_config(raw), topic, events)
    assert report.produced == len(events)


def test_delivers_exactly_what_map_produces_and_commits_the_end(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group, dlq = names("events"), names("group"), names("dlq")
    raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
    events = generate_events(1500, seed=1, now_ms=now_ms())
    produce(raw, topic, events)

    result = run_cli(
        "run", "--config", str(write_config(tmp_path / "c.yaml", raw)), "--until-caught-up"
    )
    assert result.returncode == 0, result.stderr

    compiled = as_config(raw).compile()
    expected = {}
    skipped = 0
    for event in events:
        outcome = map_event(event, compiled, now_ms())
        if isinstance(outcome, Mapped):
            expected[outcome.event["id"]] = outcome.event
        else:
            skipped += 1
    stored = {e["id"]: e for e in stored_events(sandbox)}
    assert stored == expected
    assert committed_offsets(broker, group, [topic]) == end_offsets(broker, [topic])
    assert read_dlq(broker, dlq) == [] or skipped > 0
    # The start log says which build of transforms/ runs: the one this venv imports.
    assert f'"transforms: {transforms_build()}"' in result.stderr
    # How busy the run was from its first record to its last commit (bench/ reads it).
    [finished] = [
        orjson.loads(line) for line in result.stderr.splitlines() if '"run finished"' in line
    ]
    assert finished["read"] == len(events)
    assert 0 < finished["busy_s"] < 120
    assert finished["busy_cpu_s"] > 0
    assert finished["utilization"] == pytest.approx(
        finished["busy_cpu_s"] / finished["busy_s"], abs=0.01
    )
    assert 0 <= finished["busy_cpu_wait_s"] <= finished["busy_s"]


def test_kill_9_mid_run_loses_nothing_and_never_commits_past_an_unaccepted_event(
    broker: EmbeddedBroker, names: Callable[[str], str], tmp_path: Path
) -> None:
    # Slow the sandbox down so the kill lands mid-run; spread 20k events over 4 topics (the mock
    # broker keeps ~5 MiB per partition).
    with SandboxThread(sandbox_settings(faults={"latency_ms": 20})) as sandbox:
        topics = [names(f"crash{i}") for i in range(4)]
        group, dlq = names("group"), names("dlq")
        raw = consumer_config(
            broker, sandbox.url, topics, group, dlq, batch={"linger_ms": 50, "max_events": 250}
        )
        events = generate_events(20_000, seed=2, now_ms=now_ms())
        for index, topic in enumerate(topics):
            produce(raw, topic, events[index::4])
        config_path = write_config(tmp_path / "c.yaml", raw)

        process = start_cli("run", "--config", str(config_path))
        wait_for(lambda: stats(sandbox)["accepted"] >= 4000, 60, "4000 accepted events")
        process.send_signal(signal.SIGKILL)
        process.wait(10)

        # Nothing below a committed offset may be missing from the sandbox.
        accepted_ids = set(stored_ids(sandbox))
        committed = committed_offsets(broker, group, topics)
        decoder = Decoder(as_config(raw).schema_settings)
        compiled = as_config(raw).compile()
        for topic in topics:
            for message in read_topic(broker, topic):
                position = committed.get((topic, message.partition()), -1)
                if message.offset() >= position:
                    continue
                [event] = decoder.decode_batch([message.value()])
                outcome = map_event(event, compiled, now_ms())
                if isinstance(outcome, Mapped):
                    assert outcome.event["id"] in accepted_ids

        result = run_cli("run", "--config", str(config_path), "--until-caught-up", timeout=180)
        assert result.returncode == 0, result.stderr
        assert mapped_ids(raw, events) <= set(stored_ids(sandbox))
        assert committed_offsets(broker, group, topics) == end_offsets(broker, topics)


def test_api_outage_then_recovery_loses_nothing_and_dead_letters_nothing(
    broker: EmbeddedBroker, names: Callable[[str], str]
) -> None:
    outage = [{"status": 503}] * 6 + [{"status": 502}, {"drop": "before_read"}]
    with SandboxThread(sandbox_settings(faults={"script": outage})) as sandbox:
        topic, group, dlq = names("events"), names("group"), names("dlq")
        raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
        events = generate_events(800, seed=3, now_ms=now_ms())
        produce(raw, topic, events)
        pipeline = Pipeline(as_config(raw))
        assert Running(pipeline).join() == "caught_up"
        assert pipeline.summary.delivered == len(stored_ids(sandbox)) > 0
        assert not pipeline.summary.dead_lettered
        assert read_dlq(broker, dlq) == []
        assert pipeline.metrics.retries.labels(PIXEL, "503")._value.get() >= 6


def test_429_with_retry_after_waits_as_told_then_delivers(
    broker: EmbeddedBroker, names: Callable[[str], str]
) -> None:
    script = [{"status": 429, "retry_after_s": 1}, {"status": 429, "retry_after_s": 1}]
    with SandboxThread(sandbox_settings(faults={"script": script})) as sandbox:
        topic, group, dlq = names("events"), names("group"), names("dlq")
        raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
        events = generate_events(300, seed=4, now_ms=now_ms())
        produce(raw, topic, events)
        pipeline = Pipeline(as_config(raw))
        started = time.monotonic()
        assert Running(pipeline).join() == "caught_up"
        assert time.monotonic() - started >= 2.0  # two Retry-After: 1 honoured in sequence
        assert pipeline.metrics.retry_after_seconds.labels(PIXEL)._value.get() == 2.0
        assert pipeline.summary.delivered == len(stored_ids(sandbox))
        assert not pipeline.summary.dead_lettered


def test_one_poison_event_in_1000_is_isolated_by_bisection(
    broker: EmbeddedBroker, names: Callable[[str], str]
) -> None:
    events = [
        e
        for e in generate_events(1400, seed=5, now_ms=now_ms())
        if e.get("event_name") == "purchase"
    ]
    poison = events[123]["context"]["event_id"]
    with SandboxThread(sandbox_settings(faults={"poison_ids": [poison]})) as sandbox:
        topic, group, dlq = names("events"), names("group"), names("dlq")
        raw = consumer_config(
            broker,
            sandbox.url,
            [topic],
            group,
            dlq,
            batch={"linger_ms": 2000, "max_events": 1000},
            kafka={"consume_batch_size": 5000},
        )
        produce(raw, topic, events)
        pipeline = Pipeline(as_config(raw))
        assert Running(pipeline).join() == "caught_up"
        stored = set(stored_ids(sandbox))
    assert poison not in stored
    assert len(stored) == len(events) - 1
    [letter] = read_dlq(broker, dlq)
    assert letter["reason"] == "rejected_by_api"
    assert letter["http_status"] == 400
    assert poison not in letter["message"]
    batches = pipeline.summary.batches
    # ~log2(1000) extra requests per poisoned batch, not one request per event.
    assert pipeline.summary.requests - batches <= 2 * 10 + 2


def test_bad_api_key_stops_loudly_and_commits_nothing(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group, dlq = names("events"), names("group"), names("dlq")
    raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
    raw["capi"]["api_key"] = "wrong-key"
    events = [
        e for e in generate_events(200, seed=6, now_ms=now_ms()) if e["event_name"] == "purchase"
    ]
    produce(raw, topic, events)
    result = run_cli(
        "run", "--config", str(write_config(tmp_path / "c.yaml", raw)), "--until-caught-up"
    )
    assert result.returncode == 3
    assert "401" in result.stderr
    assert PIXEL in result.stderr
    assert "wrong-key" not in result.stderr + result.stdout
    assert all(o < 0 for o in committed_offsets(broker, group, [topic]).values())
    assert stored_ids(sandbox) == []
    assert read_dlq(broker, dlq) == []


def test_dlq_breaker_stops_a_systemic_mapping_mismatch(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group, dlq = names("events"), names("group"), names("dlq")
    raw = consumer_config(broker, sandbox.url, [topic], group, dlq, dlq={"window": 100})
    raw["field_mapping"] = {"id": "context.no_such_field"}  # every event: missing_field id
    produce(raw, topic, generate_events(400, seed=7, now_ms=now_ms()))
    result = run_cli(
        "run", "--config", str(write_config(tmp_path / "c.yaml", raw)), "--until-caught-up"
    )
    assert result.returncode == 4
    assert "DLQ breaker" in result.stderr


def test_rebalance_second_consumer_joins_and_leaves_without_loss(
    broker: EmbeddedBroker, names: Callable[[str], str]
) -> None:
    with SandboxThread(sandbox_settings(faults={"latency_ms": 10})) as sandbox:
        topics = [names("rb0"), names("rb1")]
        group, dlq = names("group"), names("dlq")
        raw = consumer_config(broker, sandbox.url, topics, group, dlq, batch={"max_events": 200})
        events = generate_events(8000, seed=8, now_ms=now_ms())
        produce(raw, topics[0], events[::2])
        produce(raw, topics[1], events[1::2])
        first = Running(Pipeline(as_config(raw)), until_caught_up=False)
        wait_for(lambda: stats(sandbox)["accepted"] >= 1000, 60, "first deliveries")
        second = Running(Pipeline(as_config(raw)), until_caught_up=False)
        wait_for(lambda: second.pipeline.summary.read > 0, 60, "the second consumer to get work")
        second.stop()
        assert second.reason == "stopped"
        wait_for(
            lambda: committed_offsets(broker, group, topics) == end_offsets(broker, topics),
            90,
            "the group to commit the end",
        )
        first.stop()
        assert mapped_ids(raw, events) <= set(stored_ids(sandbox))
        # At-least-once: duplicates come only from work in flight during the rebalance.
        assert stats(sandbox)["duplicates"] <= 2 * as_config(raw).delivery.max_pending_events


def test_event_expiring_while_batched_is_dead_lettered_without_sinking_its_batch(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str]
) -> None:
    topic, group, dlq = names("events"), names("group"), names("dlq")
    raw = consumer_config(
        broker,
        sandbox.url,
        [topic],
        group,
        dlq,
        batch={"linger_ms": 3000},
        delivery={"validate_before_send": True},
    )
    now = now_ms()
    events = [e for e in generate_events(300, seed=9, now_ms=now) if e["event_name"] == "purchase"]
    seven_days_ms = 7 * 24 * 3600 * 1000
    events[0]["context"]["event_timestamp"] = now - seven_days_ms + 1500  # expires in the batch
    produce(raw, topic, events)
    pipeline = Pipeline(as_config(raw))
    assert Running(pipeline).join() == "caught_up"
    [letter] = read_dlq(broker, dlq)
    assert letter["reason"] == "timestamp_out_of_window"
    assert letter["field"] == "timestamp_ms"
    assert len(stored_ids(sandbox)) == len(events) - 1
    assert stats(sandbox)["rejected"] == {}  # the batch was never refused


def test_registry_down_pauses_without_dead_lettering_then_resumes(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str]
) -> None:
    from consumer.devtools.registry_stub import RegistryStub

    with RegistryStub() as registry:
        topic, group, dlq = names("events"), names("group"), names("dlq")
        raw = consumer_config(
            broker,
            sandbox.url,
            [topic],
            group,
            dlq,
            schema={
                "registry_url": registry.url,
                "registry_settings": {"max.retries": 0, "timeout": 2},
            },
        )
        events = generate_events(500, seed=10, now_ms=now_ms())
        produce(raw, topic, events)  # registers the schema: the stub now knows its id
        registry.set_available(False, close_connections=True)
        pipeline = Pipeline(as_config(raw))
        running = Running(pipeline)
        wait_for(lambda: pipeline.summary.read > 0 and pipeline.stalled, 30, "a stalled batch")
        wait_for(lambda: pipeline.metrics.paused_partitions._value.get() > 0, 10, "a pause")
        assert stored_ids(sandbox) == []
        assert not pipeline.summary.dead_lettered
        registry.set_available(True)
        assert running.join() == "caught_up"
        assert not pipeline.summary.dead_lettered
        assert read_dlq(broker, dlq) == []
        assert set(stored_ids(sandbox)) == mapped_ids(raw, events)
        assert stored_ids(sandbox)


def test_hostile_writer_schemas_and_messages_are_dead_lettered_and_the_stream_goes_on(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str]
) -> None:
    """Issue 18's end to end case: 20 events written with a registered writer schema (the
    project's plus an array of nulls), one message of that schema claiming 2^56 nulls (it
    once grew the process to 23 GB and stuck the partition), and one message whose schema id
    is refused (a 100 MB fixed): both dead-lettered `undecodable`, the 20 delivered."""
    from confluent_kafka import Producer

    from consumer.avro.encoder import PlainEncoder
    from consumer.devtools.registry_stub import RegistryStub
    from tests.consumer.avro.test_untrusted_input import REFUSED, framed, padded, zigzag

    with RegistryStub() as registry:
        topic, group, dlq = names("events"), names("group"), names("dlq")
        raw = consumer_config(
            broker, sandbox.url, [topic], group, dlq, schema={"registry_url": registry.url}
        )
        writer = padded("null")
        writer_id = registry.register(f"{topic}-value", json.dumps(writer))
        refused_schema, why = REFUSED["fixed"]
        refused_id = registry.register("refused-value", json.dumps(refused_schema))
        events = generate_events(20, seed=18, now_ms=now_ms())
        encoder = PlainEncoder(writer)
        good = [framed(writer_id, encoder.encode(event)) for event in events]
        hostile = good[0][:-1] + zigzag(2**56)  # its pad, last, claims 2^56 nulls
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        for value in [hostile, framed(refused_id, b"\x00" * 16), *good]:
            producer.produce(topic, value)
        assert producer.flush(10) == 0

        pipeline = Pipeline(as_config(raw))
        assert Running(pipeline).join() == "caught_up"
        letters = read_dlq(broker, dlq)
        assert [letter["reason"] for letter in letters] == ["undecodable", "undecodable"]
        # The two are dead-lettered from whichever partitions they landed on: in any order.
        assert sorted(letter["message"] for letter in letters) == [
            "Avro decode error (ValueError)",
            f"schema id {refused_id} refused: {why}",
        ]
        assert set(stored_ids(sandbox)) == mapped_ids(raw, events)
        assert len(stored_ids(sandbox)) == 20
