"""Where the live loop reads from: a `KafkaSource` and its confluent-kafka implementation.

The source owns the client: subscribing and the rebalance callbacks (handed on to a
`SourceListener`, the loop), pause/resume, commits and their confirmations, committed offsets
and watermarks. Records are confluent-kafka `Message`s (or anything with the same methods, in
tests): the hot path reads them as they come, with no wrapping per record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumer.config import AppConfig
from consumer.errors import SourceError
from consumer.live.kafka_clients import consumer_settings
from consumer.live.offsets import TopicPartitionKey
from consumer.live.reachability import ErrorCause, await_metadata, client_logger, known_topics

# The error code of the marker a source returns when a partition's end is reached.
PARTITION_EOF: Final = KafkaError._PARTITION_EOF


class Record(Protocol):
    """A consumed record, or an error marker (`error()` not None: see `PARTITION_EOF`)."""

    def error(self) -> Any: ...

    def topic(self) -> str | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int | None: ...

    def key(self) -> bytes | None: ...

    def value(self) -> bytes | None: ...

    def timestamp(self) -> tuple[int, int]: ...

    def headers(self) -> Any: ...


class SourceListener(Protocol):
    """What the source tells the loop, from inside `consume()` (rebalances, commit answers,
    client errors) or from `commit(asynchronous=False)`."""

    def assigned(self, keys: list[TopicPartitionKey]) -> None: ...

    def revoked(self, keys: list[TopicPartitionKey]) -> None: ...

    def lost(self, keys: list[TopicPartitionKey]) -> None: ...

    def committed(
        self, confirmed: dict[TopicPartitionKey, int], failed: int, error: str | None
    ) -> None:
        """The broker's answer to a commit: `confirmed` positions, `failed` partitions."""
        ...

    def client_error(self, error: KafkaError) -> None: ...


class KafkaSource(Protocol):
    def open(self, listener: SourceListener) -> None:
        """Connect; from now on events go to `listener`."""
        ...

    def subscribe(self, topics: list[str], start_offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Join the group. Assigned partitions without a committed offset start at
        `start_offsets` where given (a bounded run), else per `auto.offset.reset`."""
        ...

    def consume(self, max_records: int, timeout_s: float) -> list[Record]: ...

    def pause(self, keys: Iterable[TopicPartitionKey]) -> None: ...

    def resume(self, keys: Iterable[TopicPartitionKey]) -> None: ...

    def commit(
        self, positions: Mapping[TopicPartitionKey, int], metadata: str | None, asynchronous: bool
    ) -> None:
        """Commit; the answer goes to `SourceListener.committed` (at once when synchronous).
        Raises `SourceError` when the request cannot be made."""
        ...

    def committed(
        self, keys: list[TopicPartitionKey], timeout_s: float
    ) -> dict[TopicPartitionKey, int]:
        """The group's committed positions (negative: none). Raises `SourceError`."""
        ...

    def metadata(self, timeout_s: float) -> dict[str, list[int]]:
        """The cluster's topics (those without an error) and their partitions, asking for all
        topics so that none is auto-created. Raises `SourceError`."""
        ...

    def await_metadata(self, timeout_s: float, cause: ErrorCause) -> dict[str, list[int]]:
        """`metadata`, asking until a broker answers; `KafkaUnreachable` after `timeout_s`
        (saying why, from `cause`)."""
        ...

    def watermarks(
        self, key: TopicPartitionKey, *, cached: bool = False, timeout_s: float | None = None
    ) -> tuple[int, int]:
        """(low, high) offsets of a partition. Raises `SourceError`."""
        ...

    def close(self) -> None: ...


def live_consumer_settings(config: AppConfig, group_id: str) -> dict[str, Any]:
    """The live consumer's librdkafka settings; the callbacks are added by `ConfluentSource`."""
    settings: dict[str, Any] = {"auto.offset.reset": "earliest"}
    settings.update(consumer_settings(config.kafka_consumer_settings()))
    # Not overridable: commits are ours, after the API accepted.
    settings.update(
        {
            "enable.partition.eof": True,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Subscribing to a misspelled topic must not create it.
            "allow.auto.create.topics": False,
        }
    )
    return settings


class ConfluentSource:
    """`KafkaSource` on a confluent-kafka `Consumer` (eager rebalancing only)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self._settings = settings
        self._consumer: Consumer | None = None
        self._listener: SourceListener | None = None
        self._start_offsets: Mapping[TopicPartitionKey, int] = {}

    @property
    def _client(self) -> Consumer:
        assert self._consumer is not None, "open() first"
        return self._consumer

    def open(self, listener: SourceListener) -> None:
        self._listener = listener
        self._consumer = Consumer(
            {
                **self._settings,
                "error_cb": self._on_error,
                "on_commit": self._on_commit,
                "logger": client_logger("librdkafka.consumer"),
            }
        )

    def subscribe(self, topics: list[str], start_offsets: Mapping[TopicPartitionKey, int]) -> None:
        self._start_offsets = start_offsets
        self._client.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def consume(self, max_records: int, timeout_s: float) -> list[Record]:
        return cast(list[Record], self._client.consume(max_records, timeout_s))

    def pause(self, keys: Iterable[TopicPartitionKey]) -> None:
        self._client.pause(_partitions(keys))

    def resume(self, keys: Iterable[TopicPartitionKey]) -> None:
        self._client.resume(_partitions(keys))

    def commit(
        self, positions: Mapping[TopicPartitionKey, int], metadata: str | None, asynchronous: bool
    ) -> None:
        offsets = [
            TopicPartition(topic, partition, position, metadata)
            if metadata
            else TopicPartition(topic, partition, position)
            for (topic, partition), position in positions.items()
        ]
        try:
            if asynchronous:
                self._client.commit(offsets=offsets, asynchronous=True)
            else:
                self._on_commit(None, self._client.commit(offsets=offsets, asynchronous=False))
        except KafkaException as exc:
            raise SourceError(str(exc)) from exc

    def committed(
        self, keys: list[TopicPartitionKey], timeout_s: float
    ) -> dict[TopicPartitionKey, int]:
        try:
            answers = self._client.committed(_partitions(keys), timeout=timeout_s)
        except KafkaException as exc:
            raise SourceError(str(exc)) from exc
        return {(tp.topic, tp.partition): tp.offset for tp in answers}

    def metadata(self, timeout_s: float) -> dict[str, list[int]]:
        try:
            return known_topics(self._client.list_topics(timeout=timeout_s))
        except KafkaException as exc:
            raise SourceError(str(exc)) from exc

    def await_metadata(self, timeout_s: float, cause: ErrorCause) -> dict[str, list[int]]:
        servers = str(self._settings.get("bootstrap.servers"))
        return known_topics(await_metadata(self._client, servers, timeout_s, cause))

    def watermarks(
        self, key: TopicPartitionKey, *, cached: bool = False, timeout_s: float | None = None
    ) -> tuple[int, int]:
        partition = TopicPartition(*key)
        try:
            if timeout_s is None:
                low, high = self._client.get_watermark_offsets(partition, cached=cached)
            else:
                low, high = self._client.get_watermark_offsets(
                    partition, cached=cached, timeout=timeout_s
                )
        except KafkaException as exc:
            raise SourceError(str(exc)) from exc
        return low, high

    def close(self) -> None:
        self._client.close()

    # -- librdkafka callbacks (called from inside consume() and commit()) ----------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._start_offsets:
            # A failure here raises out of consume(): the run stops and reports it (exit 1)
            # rather than start a bounded run from a guessed position.
            committed = consumer.committed(partitions, timeout=30)
            for tp, done in zip(partitions, committed, strict=True):
                start = self._start_offsets.get((tp.topic, tp.partition))
                if done.offset < 0 and start is not None:
                    tp.offset = start
            consumer.assign(partitions)
        assert self._listener is not None
        self._listener.assigned(_keys(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._listener is not None
        self._listener.revoked(_keys(partitions))

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._listener is not None
        self._listener.lost(_keys(partitions))

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        confirmed = {
            (tp.topic, tp.partition): tp.offset
            for tp in partitions
            if tp.error is None and tp.offset >= 0
        }
        assert self._listener is not None
        self._listener.committed(
            confirmed, len(partitions) - len(confirmed), error.name() if error else None
        )

    def _on_error(self, error: KafkaError) -> None:
        assert self._listener is not None
        self._listener.client_error(error)


def coordinates(record: Record) -> tuple[TopicPartitionKey, int]:
    """(topic, partition), offset of a consumed record (never None for a record)."""
    return (cast(str, record.topic()), cast(int, record.partition())), cast(int, record.offset())


def _partitions(keys: Iterable[TopicPartitionKey]) -> list[TopicPartition]:
    return [TopicPartition(topic, partition) for topic, partition in keys]


def _keys(partitions: list[TopicPartition]) -> list[TopicPartitionKey]:
    return [(tp.topic, tp.partition) for tp in partitions]
