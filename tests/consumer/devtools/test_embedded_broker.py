"""The embedded broker: librdkafka's mock cluster in a child process that starts fast, serves
the Kafka protocol on 127.0.0.1, and stops (only itself) on request, SIGTERM or stdin EOF."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from consumer.devtools.embedded_broker import EmbeddedBroker

DEADLINE_S = 20.0


def first_line(process: subprocess.Popen[bytes], timeout: float = DEADLINE_S) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    received = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in received:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no bootstrap line in time"
            if selector.select(remaining):
                chunk = os.read(process.stdout.fileno(), 4096)
                assert chunk, "the broker process exited"
                received += chunk
    return received.decode().splitlines()[0]


def serving_process() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "consumer.devtools.embedded_broker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # a no-op once the process has been waited for
    process.wait(DEADLINE_S)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def brokers_of(bootstrap: str) -> int:
    return len(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers)


def test_serves_three_local_brokers_with_auto_created_four_partition_topics() -> None:
    started = time.monotonic()
    with EmbeddedBroker() as broker:
        assert time.monotonic() - started < 10
        addresses = broker.bootstrap_servers.split(",")
        assert len(addresses) == 3
        assert all(address.startswith("127.0.0.1:") for address in addresses)

        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        producer.produce("embedded-check", b"hello", b"key")
        assert producer.flush(DEADLINE_S) == 0
        metadata = producer.list_topics("embedded-check", timeout=DEADLINE_S)
        assert len(metadata.topics["embedded-check"].partitions) == 4

        consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "check"})
        consumer.assign([TopicPartition("embedded-check", p, 0) for p in range(4)])
        deadline = time.monotonic() + DEADLINE_S
        received: list[bytes | None] = []
        while not received and time.monotonic() < deadline:
            received = [m.value() for m in consumer.consume(10, 0.5) if m.error() is None]
        consumer.close()
        assert received == [b"hello"]


def test_stop_ends_its_own_child_only_and_waits_for_it() -> None:
    with EmbeddedBroker() as other:
        broker = EmbeddedBroker().start()
        pid = broker.pid
        assert pid is not None
        broker.stop()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone and reaped, not a zombie
        assert brokers_of(other.bootstrap_servers) == 3
        broker.stop()  # idempotent
        with pytest.raises(RuntimeError, match="not started"):
            _ = broker.bootstrap_servers


def test_the_child_exits_when_its_stdin_closes() -> None:
    process = serving_process()
    try:
        assert first_line(process).count("127.0.0.1:") == 3
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(DEADLINE_S) == 0
    finally:
        finish(process)


def test_the_child_exits_cleanly_on_sigterm() -> None:
    process = serving_process()
    try:
        first_line(process)
        process.terminate()
        assert process.wait(DEADLINE_S) == 0
    finally:
        finish(process)
