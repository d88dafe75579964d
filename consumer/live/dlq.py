"""The dead-letter topic: an Avro record (schemas/dead_letter.avsc) holding the original bytes
and why they could not be delivered, with the same facts as Kafka headers.

A write settles its source offset only once the broker acknowledged it; a failed write is
retried without limit (with backoff) and reported as `failing`, so the pipeline pauses
consumption instead of committing past an event that is nowhere.
"""

from __future__ import annotations

import io
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import fastavro
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumer.live.reachability import client_logger
from consumer.redaction import redact_text
from schemas import load_schema

log = logging.getLogger("consumer.dlq")

REASONS = (
    "undecodable",
    "missing_field",
    "invalid_value",
    "timestamp_out_of_window",
    "rejected_by_api",
    "too_large",
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event first came from; kept across DLQ replays."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    attempts: int = 1

    @classmethod
    def of(cls, message: Any) -> Origin:
        _, timestamp = message.timestamp()
        return cls(
            message.topic(),
            message.partition(),
            message.offset(),
            int(timestamp) if timestamp is not None and timestamp > 0 else 0,
            message.key(),
            message.value(),
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    origin: Origin
    reason: str
    message: str
    field: str | None = None
    http_status: int | None = None
    pixel_id: str | None = None


class DeadLetterCodec:
    def __init__(self) -> None:
        self.schema = fastavro.parse_schema(load_schema("dead_letter.avsc"))

    def encode(self, letter: DeadLetter, now_ms: int) -> bytes:
        origin = letter.origin
        record = {
            "value": origin.value or b"",
            "key": origin.key,
            "topic": origin.topic,
            "partition": origin.partition,
            "offset": origin.offset,
            "timestamp": origin.timestamp_ms or None,
            "reason": letter.reason,
            "message": letter.message,
            "field": letter.field,
            "http_status": letter.http_status,
            "attempts": origin.attempts,
            "dead_lettered_at": now_ms,
            "pixel_id": letter.pixel_id,
        }
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self.schema, record)
        return buffer.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        record = fastavro.schemaless_reader(io.BytesIO(data), self.schema, None)
        assert isinstance(record, dict)
        return record


def headers_of(letter: DeadLetter) -> list[tuple[str, str | bytes | None]]:
    origin = letter.origin
    headers: list[tuple[str, str | bytes | None]] = [
        ("capi.dlq.reason", letter.reason.encode()),
        ("capi.dlq.message", letter.message.encode()),
        ("capi.dlq.topic", origin.topic.encode()),
        ("capi.dlq.partition", str(origin.partition).encode()),
        ("capi.dlq.offset", str(origin.offset).encode()),
        ("capi.dlq.attempts", str(origin.attempts).encode()),
    ]
    if letter.field:
        headers.append(("capi.dlq.field", letter.field.encode()))
    if letter.http_status is not None:
        headers.append(("capi.dlq.http_status", str(letter.http_status).encode()))
    return headers


# Errors no retry can fix: the topic or the permissions have to change.
_PERMANENT = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.INVALID_RECORD,
        KafkaError.MSG_SIZE_TOO_LARGE,
    }
)


@dataclass(slots=True)
class _Write:
    letter: DeadLetter
    on_acked: Callable[[], None]
    attempt: int = 0
    retry_at: float = 0.0


class DeadLetterWriter:
    def __init__(
        self,
        producer_settings: dict[str, Any],
        topic: str,
        clock: Callable[[], float] = time.time,
        max_backoff_s: float = 30.0,
        error_cb: Callable[[KafkaError], None] | None = None,
    ) -> None:
        settings: dict[str, Any] = {"acks": "all", "enable.idempotence": True, "linger.ms": 20}
        settings.update(producer_settings)
        settings["logger"] = client_logger("librdkafka.dlq")
        if error_cb is not None:
            settings["error_cb"] = error_cb
        self._producer = Producer(settings)
        self._topic = topic
        self._codec = DeadLetterCodec()
        self._clock = clock
        self._max_backoff_s = max_backoff_s
        self._retry: list[_Write] = []
        self.in_flight = 0
        self.fatal_error: str | None = None  # a write that can never succeed

    @property
    def failing(self) -> bool:
        return bool(self._retry)

    def write(self, letter: DeadLetter, on_acked: Callable[[], None]) -> None:
        """Produce `letter`; its message and field are redacted (API errors may echo keys or
        personal data), its original key and value are kept intact for replay."""
        field_path = redact_text(letter.field) if letter.field else letter.field
        letter = replace(letter, message=redact_text(letter.message), field=field_path)
        self._produce(_Write(letter, on_acked))

    def _produce(self, write: _Write) -> None:
        value = self._codec.encode(write.letter, int(self._clock() * 1000))

        def delivered(error: KafkaError | None, _message: Message) -> None:
            self.in_flight -= 1
            if error is None:
                write.on_acked()
            else:
                self._failed(write, error)

        while True:
            try:
                self._producer.produce(
                    self._topic,
                    value=value,
                    key=write.letter.origin.key,
                    headers=headers_of(write.letter),
                    on_delivery=delivered,
                )
                break
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as exc:
                self._failed(write, exc.args[0])
                return
        self.in_flight += 1

    def _failed(self, write: _Write, error: KafkaError) -> None:
        """Too large: park the letter without the original bytes (its coordinates and reason
        still say where to find them). Not retriable: stop the service. Else retry later."""
        letter = write.letter
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE and letter.origin.value:
            size = len(letter.origin.value)
            message = f"{letter.message} (original value of {size} bytes too large for the DLQ)"
            write.letter = replace(
                letter, origin=replace(letter.origin, value=None), message=message
            )
            self._produce(write)
            return
        if error.fatal() or error.code() in _PERMANENT:
            self.fatal_error = f"the dead-letter topic refuses writes: {error.name()}"
            log.error("DLQ write refused for good", extra={"error": error.name()})
            return
        write.attempt += 1
        delay = random.uniform(0, min(self._max_backoff_s, 0.2 * 2 ** min(write.attempt, 20)))
        write.retry_at = self._clock() + delay
        self._retry.append(write)
        log.warning(
            "DLQ write failed, will retry",
            extra={"error": error.name(), "attempt": write.attempt, "delay_s": delay},
        )

    def poll(self) -> None:
        """Serve delivery callbacks; re-send failed writes whose backoff has passed."""
        self._producer.poll(0)
        if self._retry:
            now = self._clock()
            due = [write for write in self._retry if write.retry_at <= now]
            if due:
                self._retry = [write for write in self._retry if write.retry_at > now]
                for write in due:
                    self._produce(write)

    def close(self) -> None:
        self._producer.close()

    def flush(self, timeout: float) -> bool:
        """Wait until every write is acknowledged or the timeout passes."""
        deadline = time.monotonic() + timeout
        while (self.in_flight or self._retry) and time.monotonic() < deadline:
            self.poll()
            self._producer.flush(min(0.1, max(0.0, deadline - time.monotonic())))
        return not (self.in_flight or self._retry)
