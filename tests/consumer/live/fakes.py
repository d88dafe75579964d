"""In-memory stand-ins for the live loop's collaborators (as arroyo's `LocalBroker` and
`MockedClock`): a source, delivery, a dead-letter topic and a clock, all driven from the test's
own thread. The source calls `on_consume` from inside `consume()`, where librdkafka runs the
rebalance callbacks, so a test acts at a chosen turn of the loop."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError

from consumer.config import AppConfig
from consumer.live.batching import Batch
from consumer.live.delivery import BatchResult
from consumer.live.dlq import DeadLetter
from consumer.live.offsets import TopicPartitionKey
from consumer.live.reachability import ErrorCause
from consumer.live.source import PARTITION_EOF, Record, SourceListener

NO_COMMIT = -1001  # librdkafka's OFFSET_INVALID: the group has no committed offset


@dataclass(frozen=True, slots=True)
class FakeRecord:
    key_: TopicPartitionKey
    offset_: int
    value_: bytes | None
    timestamp_ms: int
    error_: KafkaError | None = None

    def error(self) -> KafkaError | None:
        return self.error_

    def topic(self) -> str:
        return self.key_[0]

    def partition(self) -> int:
        return self.key_[1]

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes | None:
        return self.value_

    def timestamp(self) -> tuple[int, int]:
        return 1, self.timestamp_ms  # TIMESTAMP_CREATE_TIME

    def headers(self) -> Any:
        return None


class InMemorySource:
    """One member alone in its group: every partition of the subscribed topics is assigned on
    the first `consume()`; commits are confirmed at once; the end of a partition is reported
    once per arrival there, as librdkafka does with `enable.partition.eof`."""

    def __init__(self, log: Mapping[TopicPartitionKey, list[bytes | None]], timestamp_ms: int):
        self.log = {key: list(values) for key, values in log.items()}
        self.timestamp_ms = timestamp_ms
        self.assigned: list[TopicPartitionKey] = []
        self.paused: set[TopicPartitionKey] = set()
        self.pause_calls = 0
        self.resume_calls = 0
        self.commits: dict[TopicPartitionKey, int] = {}
        self.commit_metadata: set[str | None] = set()
        self.consume_calls = 0
        self.closed = False
        # Called with the call count at the start of each consume(): the test's hook.
        self.on_consume: Callable[[int], None] | None = None
        self._listener: SourceListener | None = None
        self._topics: list[str] = []
        self._start_offsets: Mapping[TopicPartitionKey, int] = {}
        self._joined = False
        self._position: dict[TopicPartitionKey, int] = {}
        self._at_end: set[TopicPartitionKey] = set()

    @property
    def listener(self) -> SourceListener:
        assert self._listener is not None
        return self._listener

    def open(self, listener: SourceListener) -> None:
        self._listener = listener

    def subscribe(self, topics: list[str], start_offsets: Mapping[TopicPartitionKey, int]) -> None:
        self._topics = topics
        self._start_offsets = start_offsets

    def consume(self, max_records: int, timeout_s: float) -> list[Record]:
        self.consume_calls += 1
        if self.on_consume is not None:
            self.on_consume(self.consume_calls)
        if not self._joined:
            self._joined = True
            self.assign([key for key in sorted(self.log) if key[0] in self._topics])
        records: list[Record] = []
        for key in self.assigned:
            if key in self.paused:
                continue
            values = self.log[key]
            position = self._position[key]
            while position < len(values) and len(records) < max_records:
                records.append(FakeRecord(key, position, values[position], self.timestamp_ms))
                position += 1
            self._position[key] = position
            if position == len(values) and key not in self._at_end:
                self._at_end.add(key)
                eof = KafkaError(PARTITION_EOF)
                records.append(FakeRecord(key, position, None, self.timestamp_ms, eof))
        return records

    def assign(self, keys: list[TopicPartitionKey]) -> None:
        for key in keys:
            committed = self.commits.get(key, NO_COMMIT)
            self._position[key] = committed if committed >= 0 else self._start_offsets.get(key, 0)
        self.assigned += keys
        self.listener.assigned(keys)

    def revoke(self, keys: list[TopicPartitionKey]) -> None:
        """A rebalance takes these partitions away (call it from `on_consume`)."""
        self.listener.revoked(keys)
        self.assigned = [key for key in self.assigned if key not in keys]
        self.paused.difference_update(keys)

    def pause(self, keys: Iterable[TopicPartitionKey]) -> None:
        self.pause_calls += 1
        self.paused.update(keys)

    def resume(self, keys: Iterable[TopicPartitionKey]) -> None:
        self.resume_calls += 1
        self.paused.difference_update(keys)

    def commit(
        self, positions: Mapping[TopicPartitionKey, int], metadata: str | None, asynchronous: bool
    ) -> None:
        self.commits.update(positions)
        self.commit_metadata.add(metadata)
        self.listener.committed(dict(positions), 0, None)

    def committed(
        self, keys: list[TopicPartitionKey], timeout_s: float
    ) -> dict[TopicPartitionKey, int]:
        return {key: self.commits.get(key, NO_COMMIT) for key in keys}

    def metadata(self, timeout_s: float) -> dict[str, list[int]]:
        topics: dict[str, list[int]] = {}
        for topic, partition in sorted(self.log):
            topics.setdefault(topic, []).append(partition)
        return topics

    def await_metadata(self, timeout_s: float, cause: ErrorCause) -> dict[str, list[int]]:
        return self.metadata(timeout_s)

    def watermarks(
        self, key: TopicPartitionKey, *, cached: bool = False, timeout_s: float | None = None
    ) -> tuple[int, int]:
        return 0, len(self.log[key])

    def close(self) -> None:
        self.closed = True


class _AnsweringQueue(queue.SimpleQueue[BatchResult]):
    """The results queue; when the loop waits on it, `on_wait` may answer held batches."""

    on_wait: Callable[[], None] | None = None

    def get(self, block: bool = True, timeout: float | None = None) -> BatchResult:
        if self.on_wait is not None:
            self.on_wait()
        return super().get(block, timeout)


class FakeDelivery:
    """Delivery without HTTP: every batch is accepted, at once or (`hold`) when released."""

    def __init__(self, hold: bool = False) -> None:
        self.results: queue.SimpleQueue[BatchResult] = _AnsweringQueue()
        self.hold = hold
        self.held: list[Batch] = []
        self.submitted: list[Batch] = []
        self.retrying = False

    def answer_when_waited_on(self) -> None:
        """From now on, held batches are answered as soon as the loop waits for a result."""
        assert isinstance(self.results, _AnsweringQueue)
        self.results.on_wait = self.release

    def start(self) -> None:
        pass

    def submit(self, batch: Batch) -> None:
        self.submitted.append(batch)
        if self.hold:
            self.held.append(batch)
        else:
            self.results.put(BatchResult(batch, delivered=list(batch.items), requests=1))

    def release(self) -> None:
        held, self.held = self.held, []
        for batch in held:
            self.results.put(BatchResult(batch, delivered=list(batch.items), requests=1))

    def cancel_all(self) -> None:
        self.held.clear()

    def stop(self, timeout: float = 5.0) -> None:
        pass

    def sent_offsets(self, key: TopicPartitionKey) -> list[int]:
        return [item.offset for b in self.submitted for item in b.items if item.source == key]


class FakeDeadLetters:
    """A dead-letter topic that acknowledges every write at once."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.in_flight = 0
        self.fatal = None
        self.failing = False

    def write(self, letter: DeadLetter, on_acked: Callable[[], None]) -> None:
        self.letters.append(letter)
        on_acked()

    def poll(self) -> None:
        pass

    def flush(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


class TickingClock:
    """Time that moves only when read, by `tick_s` per reading: deadlines pass after a known
    number of turns of the loop, whatever the machine's load."""

    def __init__(self, start_s: float, tick_s: float = 0.001) -> None:
        self._start_s = start_s
        self._elapsed_s = 0.0
        self._tick_s = tick_s

    def time(self) -> float:
        self._elapsed_s += self._tick_s
        return self._start_s + self._elapsed_s

    def monotonic(self) -> float:
        self._elapsed_s += self._tick_s
        return self._elapsed_s


def live_config(**sections: dict[str, Any]) -> AppConfig:
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": "unused:9092", "topics": ["events"]},
        "capi": {"pixel_id": "px-1", "api_key": "test-key"},
        "batch": {"linger_ms": 50},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return AppConfig.model_validate(raw)
