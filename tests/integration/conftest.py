"""Shared fixtures for integration tests: a real Kafka-protocol broker (librdkafka's mock
cluster in a child process), the real sandbox over 127.0.0.1, real consumers and CLIs.

One broker serves the whole session; every test uses its own topics and groups (`names`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from consumer.config import AppConfig
from consumer.devtools.embedded_broker import EmbeddedBroker
from consumer.live.dlq import DeadLetterCodec
from consumer.sandbox.server import SandboxThread
from consumer.sandbox.settings import SandboxSettings

PIXEL = "pixel-it"
API_KEY = "it-key"
CLI = str(Path(sys.executable).with_name("capi-consumer"))

pytestmark = pytest.mark.integration


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture
def names() -> Callable[[str], str]:
    """Unique topic/group names per test (the session shares one broker)."""
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-{suffix}"


def sandbox_settings(**overrides: Any) -> SandboxSettings:
    raw: dict[str, Any] = {
        "pixels": [{"pixel_id": PIXEL, "api_keys": [API_KEY]}],
        "recent_events_per_pixel": 100_000,
    }
    raw.update(overrides)
    return SandboxSettings.model_validate(raw)


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(sandbox_settings()) as running:
        yield running


def consumer_config(
    broker: EmbeddedBroker,
    sandbox_url: str,
    topics: list[str],
    group: str,
    dlq_topic: str,
    **sections: Any,
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": broker.bootstrap_servers,
            "group_id": group,
            "topics": topics,
            "commit_interval_s": 0.2,
            "settings": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
        },
        "capi": {"base_url": sandbox_url, "pixel_id": PIXEL, "api_key": API_KEY},
        "batch": {"linger_ms": 100},
        "delivery": {"retry": {"initial_backoff_s": 0.05, "max_backoff_s": 0.5}},
        "dlq": {"topic": dlq_topic},
        "observability": {"enabled": False, "log_level": "info", "log_format": "json"},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], **values}
        else:
            raw[section] = values
    return raw


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def as_config(raw: dict[str, Any]) -> AppConfig:
    return AppConfig.model_validate(raw)


def run_cli(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPI_CONSUMER_")}
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        **kwargs,
    )


def start_cli(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPI_CONSUMER_")}
    return subprocess.Popen(
        [CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs
    )


def committed_offsets(
    broker: EmbeddedBroker, group: str, topics: list[str]
) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, 10)}
    finally:
        consumer.close()


def end_offsets(broker: EmbeddedBroker, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "probe"})
    try:
        result = {}
        for topic in topics:
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                result[(topic, p)] = high
        return result
    finally:
        consumer.close()


def read_topic(broker: EmbeddedBroker, topic: str, timeout: float = 20) -> list[Any]:
    """Every record of a topic, from the beginning (assign, no group commits)."""
    ends = end_offsets(broker, [topic])
    total = sum(ends.values())
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap_servers, "group.id": "reader-" + uuid.uuid4().hex}
    )
    consumer.assign([TopicPartition(t, p, 0) for (t, p) in ends])
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < total and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None:
                    records.append(message)
    finally:
        consumer.close()
    assert len(records) == total, f"read {len(records)} of {total} records of {topic}"
    return records


def read_dlq(broker: EmbeddedBroker, topic: str) -> list[dict[str, Any]]:
    codec = DeadLetterCodec()
    try:
        return [codec.decode(m.value()) for m in read_topic(broker, topic)]
    except KeyError:  # the topic does not exist: nothing was dead-lettered
        return []


def stats(sandbox: SandboxThread) -> dict[str, Any]:
    return sandbox.call(lambda state: state.stats())


def stored_ids(sandbox: SandboxThread, pixel: str = PIXEL) -> list[str]:
    return sandbox.call(lambda state: state.stored_ids(pixel))


def stored_events(sandbox: SandboxThread, pixel: str = PIXEL) -> list[dict[str, Any]]:
    """Stored events as sent (the sandbox's own bookkeeping keys removed)."""
    events = sandbox.call(lambda state: state.recent_events(pixel, 1_000_000))
    for event in events:
        event.pop("channel", None)
        event.pop("received_ms", None)
    return events
