"""`capi-consumer produce --topic T [--config FILE] [--bootstrap HOST:PORT] < events.jsonl`

Encodes CA JSON events with the project schema, in the wire format a consumer with the same
configuration reads, and produces them: record timestamp from `context.event_timestamp` when it
parses, record key from `user.id` (so one user's events stay in order in one partition), lz4
compression. A line that is not a valid event is reported on stderr by its line number and
skipped; blank lines are ignored.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Final

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from consumer.avro.decoding import EncodeError, Encoder, RegistryRejected, RegistryUnavailable
from consumer.config import AppConfig, ConfigError, load_config
from consumer.exit_codes import EXIT_CONFIG, EXIT_OK, EXIT_UNEXPECTED
from consumer.live.kafka_clients import producer_settings
from consumer.live.reachability import ErrorCause, KafkaUnreachable, await_metadata, client_logger
from consumer.observability.logs import setup_logging
from consumer.redaction import redact_log
from transforms.timestamps import parse_timestamp_ms

_POLL_EVERY: Final = 1000
_FLUSH_TIMEOUT_S: Final = 60.0
_PRODUCER_DEFAULTS: Final[dict[str, str | int | float | bool]] = {
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "queue.buffering.max.kbytes": 262_144,
}

# (line or position number, human message without any value) for a skipped event.
OnSkip = Callable[[int, str], None]


@dataclass
class ProduceReport:
    produced: int = 0
    skipped: int = 0
    failed: int = 0  # not acknowledged by the broker
    errors: list[str] = field(default_factory=list)  # first few delivery errors, for people

    @property
    def ok(self) -> bool:
        return self.failed == 0


def produce_events(
    config: AppConfig,
    topic: str,
    events: Iterable[Any],
    *,
    bootstrap_servers: str | None = None,
    on_skip: OnSkip | None = None,
    encoder: Encoder | None = None,
) -> ProduceReport:
    """Encode and produce `events` (numbered from 1 for `on_skip`); returns once all are acked."""
    return produce_numbered(
        config,
        topic,
        enumerate(events, 1),
        bootstrap_servers=bootstrap_servers,
        on_skip=on_skip,
        encoder=encoder,
    )


def produce_numbered(
    config: AppConfig,
    topic: str,
    numbered_events: Iterable[tuple[int, Any]],
    *,
    bootstrap_servers: str | None = None,
    on_skip: OnSkip | None = None,
    on_fail: OnSkip | None = None,
    encoder: Encoder | None = None,
) -> ProduceReport:
    """`produce_events` for events that carry their own numbers (input line numbers). An event
    the producer refuses or the broker does not acknowledge is counted as failed (and given to
    `on_fail`); the others are still produced and flushed. `KafkaUnreachable` when no broker
    answers within `kafka.unreachable_timeout_s`."""
    bootstrap = bootstrap_servers or config.kafka.bootstrap_servers
    if not bootstrap:
        raise ConfigError("kafka.bootstrap_servers", "required (or --bootstrap)")
    encoder = encoder or Encoder(config.schema_settings)
    report = ProduceReport()
    cause = ErrorCause()
    producer = Producer(
        {
            **_PRODUCER_DEFAULTS,
            **producer_settings(config.kafka_client_settings()),
            "bootstrap.servers": bootstrap,
            "logger": client_logger("librdkafka.produce"),
            "error_cb": cause,
        }
    )
    await_metadata(producer, bootstrap, config.kafka.unreachable_timeout_s, cause)

    def failed(number: int, reason: str) -> None:
        report.failed += 1
        if len(report.errors) < 5:
            report.errors.append(reason)
        if on_fail is not None:
            on_fail(number, reason)

    def on_delivery(number: int, error: KafkaError | None, _message: object) -> None:
        if error is None:
            report.produced += 1
        else:
            failed(number, error.str())

    for number, event in numbered_events:
        try:
            value = encoder.encode(event, topic)
        except EncodeError as exc:
            report.skipped += 1
            if on_skip is not None:
                on_skip(number, str(exc))
            continue
        key = _record_key(event)
        timestamp = _record_timestamp(event)
        while True:
            try:
                producer.produce(
                    topic,
                    value,
                    key,
                    timestamp=timestamp or 0,
                    on_delivery=functools.partial(on_delivery, number),
                )
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
                continue
            except KafkaException as exc:  # refused before queueing (too large, ...)
                failed(number, _refusal(exc.args[0], len(value)))
            break
        if number % _POLL_EVERY == 0:
            producer.poll(0)
    unsent = producer.flush(_FLUSH_TIMEOUT_S)
    if unsent:
        report.failed += unsent
        report.errors.append(f"{unsent} records not acknowledged within {_FLUSH_TIMEOUT_S:.0f}s")
    return report


def _refusal(error: KafkaError, size: int) -> str:
    if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
        return f"{size} bytes once encoded, more than the producer accepts (message.max.bytes)"
    return error.str()


def _record_key(event: Any) -> bytes | None:
    user = event.get("user")
    if not isinstance(user, dict):
        return None
    user_id = user.get("id")
    if isinstance(user_id, str) and user_id:
        return user_id.encode()
    if type(user_id) is int:
        return str(user_id).encode()
    return None


def _record_timestamp(event: Any) -> int | None:
    context = event.get("context")
    if not isinstance(context, dict):
        return None
    return parse_timestamp_ms(context.get("event_timestamp"))


def _numbered_lines(stream: IO[bytes], on_skip: OnSkip) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON object) for each line holding one; others go to `on_skip`."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            on_skip(number, "not valid JSON")
            continue
        if not isinstance(event, dict):
            on_skip(number, "not a JSON object")
            continue
        yield number, event


def command(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        encoder = Encoder(config.schema_settings)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    skipped = 0

    def report_skip(number: int, message: str) -> None:
        nonlocal skipped
        skipped += 1
        print(f"line {number}: skipped: {message}", file=sys.stderr)

    def report_failure(number: int, message: str) -> None:
        print(f"line {number}: not produced: {message}", file=sys.stderr)

    setup_logging(config.observability.log_level, config.observability.log_format)
    try:
        report = produce_numbered(
            config,
            args.topic,
            _numbered_lines(sys.stdin.buffer, report_skip),
            bootstrap_servers=args.bootstrap,
            on_skip=report_skip,
            on_fail=report_failure,
            encoder=encoder,
        )
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except KafkaUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNEXPECTED
    except (RegistryUnavailable, RegistryRejected) as exc:
        print(f"produce: schema registry: {redact_log(str(exc))}", file=sys.stderr)
        return EXIT_UNEXPECTED
    # `skipped` also counts the lines that were not JSON objects, which never reach the report.
    print(
        f"produced {report.produced} events to {args.topic}, skipped {skipped}, "
        f"failed {report.failed}"
    )
    if not report.ok:
        unacknowledged = report.errors[-1:] if "not acknowledged" in report.errors[-1] else []
        for error in unacknowledged:
            print(f"produce: delivery failed: {error}", file=sys.stderr)
        return EXIT_UNEXPECTED
    return EXIT_OK
