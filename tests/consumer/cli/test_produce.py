"""`capi-consumer produce` through the real CLI against the embedded broker: encoding in the
consumer's wire format, record timestamps and keys, and bad lines reported and skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from consumer.avro.decoding import DecodeFailure, Decoder
from consumer.cli.produce import produce_events
from consumer.config import AppConfig
from consumer.devtools.embedded_broker import EmbeddedBroker
from consumer.devtools.registry_stub import RegistryStub
from consumer.devtools.samples import generate_events
from tests.consumer.avro.records import without_nulls

CLI = str(Path(sys.executable).with_name("capi-consumer"))
DEADLINE_S = 30.0
ISO_TIMESTAMP = "2025-04-18T07:53:39.974+02:00"
ISO_AS_MS = 1744955619974
LEAKY_EMAIL = "leak.me@example.com"


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture
def topic() -> str:
    return f"produce-{uuid.uuid4().hex[:8]}"


def run_produce(
    stdin: bytes, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPI_CONSUMER_")}
    return subprocess.run(
        [CLI, "produce", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


def read_topic(broker: EmbeddedBroker, topic: str, count: int) -> list[Message]:
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap_servers, "group.id": f"read-{topic}"}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=DEADLINE_S).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        received: list[Message] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(received) < count and time.monotonic() < deadline:
            received += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
        return received
    finally:
        consumer.close()


def jsonl(*lines: Any) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
    )


def test_cli_produces_with_timestamps_and_keys_and_skips_bad_lines(
    broker: EmbeddedBroker, topic: str
) -> None:
    by_int = {"event_name": "purchase", "context": {"event_id": "a", "event_timestamp": 1_000_001}}
    by_int["user"] = {"id": "user-1"}
    by_string = {
        "event_name": "page_view",
        "context": {"event_id": "b", "event_timestamp": " 1000002 "},
        "user": {"id": 42},
    }
    by_iso = {
        "event_name": "sign_up",
        "context": {"event_id": "c", "event_timestamp": ISO_TIMESTAMP},
    }
    untimed = {"event_name": "custom", "context": {"event_id": "d"}, "user": {"id": "user-1"}}
    unparseable = {"event_name": "x", "context": {"event_id": "e", "event_timestamp": "soon"}}
    stdin = jsonl(
        by_int,
        b'{"event_name": "purchase", "user": {"email": "' + LEAKY_EMAIL.encode() + b'"',
        b"   ",
        by_string,
        b"[1, 2, 3]",
        by_iso,
        untimed,
        unparseable,
    )
    before_ms = int(time.time() * 1000)
    result = run_produce(stdin, "--topic", topic, "--bootstrap", broker.bootstrap_servers)
    after_ms = int(time.time() * 1000)

    assert result.returncode == 0, result.stderr
    assert f"produced 5 events to {topic}, skipped 2, failed 0" in result.stdout
    assert "line 2: skipped: not valid JSON" in result.stderr
    assert "line 5: skipped: not a JSON object" in result.stderr
    assert "line 3" not in result.stderr  # blank lines are not events
    assert LEAKY_EMAIL not in result.stderr + result.stdout

    decoder = Decoder(AppConfig().schema_settings)
    received = {}
    for message in read_topic(broker, topic, 5):
        (event,) = decoder.decode_batch([message.value()])
        assert isinstance(event, dict)
        received[event["context"]["event_id"]] = (message, event)
    assert sorted(received) == ["a", "b", "c", "d", "e"]

    expected = {"a": (1_000_001, b"user-1"), "b": (1_000_002, b"42"), "c": (ISO_AS_MS, None)}
    for event_id, (timestamp, key) in expected.items():
        message, _ = received[event_id]
        assert message.timestamp()[1] == timestamp, event_id
        assert message.key() == key, event_id
    for event_id in ("d", "e"):  # no usable event time: the time of producing
        assert before_ms <= received[event_id][0].timestamp()[1] <= after_ms
    assert received["d"][0].key() == b"user-1"
    # One user, one partition: their events stay in order.
    assert received["a"][0].partition() == received["d"][0].partition()
    assert without_nulls(received["b"][1]) == by_string


def test_cli_output_decodes_to_the_input_events(broker: EmbeddedBroker, topic: str) -> None:
    events = generate_events(2000, seed=5, now_ms=int(time.time() * 1000), invalid_ratio=0.1)
    result = run_produce(jsonl(*events), "--topic", topic, "--bootstrap", broker.bootstrap_servers)
    assert result.returncode == 0, result.stderr
    assert "produced 2000 events" in result.stdout

    decoder = Decoder(AppConfig().schema_settings)
    messages = read_topic(broker, topic, len(events))
    decoded = decoder.decode_batch([m.value() for m in messages])
    assert not [d for d in decoded if isinstance(d, DecodeFailure)]
    by_id = {json.dumps(d["context"]["event_id"]): d for d in decoded if isinstance(d, dict)}
    assert len(messages) == len(events)
    assert len({m.partition() for m in messages}) == 4
    for event in events:
        key = json.dumps(event["context"].get("event_id"))
        if key != "null":  # the spoiled events without an id are checked by count above
            assert without_nulls(by_id[key]) == event


def test_a_line_the_schema_cannot_hold_is_reported_by_number(
    broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    strict = json.loads((Path(__file__).parents[3] / "schemas/tracking_event.avsc").read_text())
    strict["fields"][0] = {"name": "event_name", "type": "string"}  # required here
    (tmp_path / "strict.avsc").write_text(json.dumps(strict), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": broker.bootstrap_servers},
                "schema": {"local_schema": str(tmp_path / "strict.avsc")},
            }
        ),
        encoding="utf-8",
    )
    stdin = jsonl({"event_name": "purchase"}, {"context": {"event_id": "no name"}})
    result = run_produce(stdin, "--topic", topic, "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "produced 1 events" in result.stdout
    assert "line 2: skipped: /event_name: required by the schema" in result.stderr


def test_configuration_errors_exit_2(tmp_path: Path, topic: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("kafka:\n  no_such_key: 1\n", encoding="utf-8")
    bad_key = run_produce(b"{}\n", "--topic", topic, "--config", str(config))
    assert bad_key.returncode == 2
    assert "kafka.no_such_key" in bad_key.stderr
    no_broker = run_produce(b"{}\n", "--topic", topic, cwd=tmp_path)
    assert no_broker.returncode == 2
    assert "kafka.bootstrap_servers" in no_broker.stderr


def test_produce_events_uses_the_registry_and_confluent_framing(
    broker: EmbeddedBroker, topic: str
) -> None:
    events = generate_events(50, seed=8, now_ms=int(time.time() * 1000))
    with RegistryStub() as registry:
        config = AppConfig.model_validate(
            {
                "kafka": {"bootstrap_servers": broker.bootstrap_servers},
                "schema": {"registry_url": registry.url},
            }
        )
        skipped: list[int] = []
        report = produce_events(
            config, topic, [*events, "not an event"], on_skip=lambda n, _: skipped.append(n)
        )
        assert (report.produced, report.skipped, report.failed) == (50, 1, 0)
        assert skipped == [51]
        schema_id = (
            SchemaRegistryClient({"url": registry.url})
            .get_latest_version(f"{topic}-value")
            .schema_id
        )
        assert schema_id is not None
        messages = read_topic(broker, topic, len(events))
        header = b"\x00" + schema_id.to_bytes(4, "big")
        assert {(m.value() or b"")[:5] for m in messages} == {header}
        decoded = Decoder(config.schema_settings).decode_batch([m.value() for m in messages])
    ids = sorted(d["context"]["event_id"] for d in decoded if isinstance(d, dict))
    assert ids == sorted(e["context"]["event_id"] for e in events)


def test_an_oversized_event_is_reported_by_line_and_the_rest_is_produced(
    broker: EmbeddedBroker, topic: str
) -> None:
    small = [{"event_name": "page_view", "context": {"event_id": f"e{n}"}} for n in range(4)]
    huge = {"event_name": "page_view", "context": {"event_id": "big"}, "blob": "x" * 1_200_000}
    stdin = jsonl(small[0], small[1], huge, b"not json", small[2], small[3])
    result = run_produce(stdin, "--topic", topic, "--bootstrap", broker.bootstrap_servers)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    stderr_lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert stderr_lines[0] == "line 3: not produced: " + stderr_lines[0].split(": ", 2)[2]
    assert "message.max.bytes" in stderr_lines[0]
    assert "line 4: skipped: not valid JSON" in stderr_lines
    assert result.stdout.strip() == f"produced 4 events to {topic}, skipped 1, failed 1"
    assert len(read_topic(broker, topic, 4)) == 4  # the others were flushed
