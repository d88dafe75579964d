"""`capi-consumer dlq replay` and `dlq inspect`.

Replay is a bounded run of the live pipeline over the dead-letter topic: its own group
(`<kafka.group_id>-dlq-replay-<filter id>`), the DLQ's end offsets snapshotted at start (so what
it writes back is never re-read in the same run), each record unwrapped to the ORIGINAL bytes and
coordinates, decoded and mapped with the current config, and sent. An event that fails again is
written back with its original coordinates and attempts + 1. The group's committed offsets are a
cursor: an interrupted replay resumes with its snapshot; a finished one is followed by a new
snapshot from where it stopped, so each dead letter is replayed once per filter.

`--from-time` filters by the time the record was dead-lettered (the DLQ record's Kafka
timestamp). Expired events are skipped and counted, not parked again: they can never succeed.

Inspect reads the whole topic once (no group, no commit) and prints counts by reason with a few
examples: codes, messages, fields, coordinates, attempts and sizes, never a payload or a key.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import KafkaException, Message

from consumer.cli.backfill import (
    MissingTopic,
    RangeError,
    Sample,
    admin_consumer,
    committed,
    iso_ms,
    offsets_at,
    parse_time_ms,
    partitions_of,
    range_failure,
    read_range,
    require_config,
    resolve_bounds,
    run_bounded,
    store_snapshot,
    watermarks,
)
from consumer.cli.progress import print_report
from consumer.cli.startup import load_or_exit
from consumer.config import AppConfig, ConfigError
from consumer.exit_codes import EXIT_CONFIG, EXIT_OK
from consumer.live.dlq import REASONS, DeadLetterCodec, Origin
from consumer.live.pipeline import Plan
from consumer.live.reachability import KafkaUnreachable
from consumer.observability.logs import setup_logging
from consumer.redaction import redact_text

log = logging.getLogger("consumer.dlq_tools")

REASON_HEADER = "capi.dlq.reason"
UNREADABLE = "unreadable"  # a DLQ record that is not a dead letter of this service
_MESSAGE_CHARS = 300


class DeadLetters:
    """Reads dead-letter records: the reason (header first, cheap), the origin, the facts."""

    def __init__(self) -> None:
        self._codec = DeadLetterCodec()

    def record(self, message: Message) -> dict[str, Any] | None:
        value = message.value()
        if not value:
            return None
        try:
            return self._codec.decode(value)
        except Exception:  # any decode error means the same: not one of ours
            return None

    def reason(self, message: Message) -> str:
        headers = message.headers() or []  # a consumed record's headers are a list of pairs
        for name, value in headers if isinstance(headers, list) else headers.items():
            if name == REASON_HEADER and isinstance(value, bytes):
                return value.decode("utf-8", "replace")
        record = self.record(message)
        return str(record["reason"]) if record is not None else UNREADABLE

    def unwrap(self, message: Message) -> tuple[bytes | None, Origin]:
        """The original value to decode again, and where it first came from."""
        record = self.record(message)
        if record is None:
            log.warning(
                "unreadable DLQ record; replayed as it is",
                extra={"partition": message.partition(), "offset": message.offset()},
            )
            return message.value(), Origin.of(message)
        origin = Origin(
            record["topic"],
            record["partition"],
            record["offset"],
            record["timestamp"] or 0,
            record["key"],
            record["value"],
            record["attempts"],
        )
        return record["value"], origin


def _filter_id(reasons: list[str], from_time_ms: int | None) -> str:
    canonical = orjson.dumps({"reasons": reasons, "from_time_ms": from_time_ms})
    return hashlib.sha256(canonical).hexdigest()[:12]


def _require_kafka(config: AppConfig) -> None:
    if not config.kafka.bootstrap_servers:
        raise ConfigError("kafka.bootstrap_servers", "required")


def replay_command(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    try:
        require_config(config, args.dry_run)
        reasons = sorted(set(args.reason or ()))
        unknown = [r for r in reasons if r not in REASONS]
        if unknown:
            raise RangeError(f"--reason: unknown {unknown}; one of {list(REASONS)}")
        from_time_ms = parse_time_ms(args.from_time, "--from-time") if args.from_time else None
    except (ConfigError, RangeError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.observability.log_level, config.observability.log_format)
    filter_id = _filter_id(reasons, from_time_ms)
    group_id = f"{config.kafka.group_id}-dlq-replay-{filter_id}"
    topics = [config.dlq.topic]
    now_ms = time.time_ns() // 1_000_000
    try:
        with admin_consumer(config, group_id) as consumer:
            try:
                keys = partitions_of(consumer, topics)
            except MissingTopic:
                print_report({"dlq_topic": config.dlq.topic, "total": 0, "complete": True})
                return EXIT_OK  # nothing was ever dead-lettered
            marks = watermarks(consumer, keys)
            at_time = offsets_at(consumer, keys, from_time_ms) if from_time_ms is not None else {}
            starts = {key: max(marks[key][0], at_time.get(key, 0)) for key in keys}
            fresh_end = {key: high for key, (_, high) in marks.items()}
            positions, stored = committed(consumer, keys)
            resolve = functools.partial(
                resolve_bounds,
                group_id=group_id,
                topics=topics,
                marks=marks,
                starts=starts,
                fresh_end=fresh_end,
                positions=positions,
                now_ms=now_ms,
            )
            bounds = resolve(stored=stored)
            if bounds.resumed and not bounds.remaining:
                # The last replay finished: continue from its offsets with a new snapshot.
                bounds = resolve(stored=None)
            if not args.dry_run and not bounds.resumed:
                store_snapshot(consumer, bounds)
    except (RangeError, KafkaException, KafkaUnreachable) as exc:
        return range_failure(exc)
    letters = DeadLetters()
    accepted = set(reasons)
    sample = Sample()
    plan = Plan(
        from_time_ms=from_time_ms,
        expired="skip",
        dry_run=args.dry_run,
        unwrap=letters.unwrap,
        accept=(lambda message: letters.reason(message) in accepted) if accepted else None,
        on_dry_run_event=sample.add if args.dry_run else None,
    )
    report: dict[str, Any] = {
        "command": "dlq replay",
        "dlq_topic": config.dlq.topic,
        "group": group_id,
        "dry_run": args.dry_run,
        "resumed": bounds.resumed,
        "snapshot_taken_at": iso_ms(bounds.snapshot.taken_at_ms),
        "reasons": reasons or "all",
        "from_time": iso_ms(from_time_ms),
    }
    if args.dry_run:
        report["sample"] = sample.events  # filled while the run goes
    return run_bounded(config, bounds, plan, f"dlq replay {filter_id}", report)


# -- inspect ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ReasonSummary:
    count: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    max_attempts: int = 0
    topics: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "first_dead_lettered": iso_ms(self.first_ms),
            "last_dead_lettered": iso_ms(self.last_ms),
            "max_attempts": self.max_attempts,
            "topics": dict(self.topics.most_common()),
            "examples": self.examples,
        }


def example_of(message: Message, record: dict[str, Any] | None) -> dict[str, Any]:
    """What an operator needs to act on a dead letter, without its content (no value, no key:
    the key is the user id)."""
    dlq_position = f"{message.topic()}[{message.partition()}]@{message.offset()}"
    if record is None:
        return {"dlq_position": dlq_position, "bytes": len(message.value() or b"")}
    # Redacted again: records written by older versions kept the API's text as it came.
    text = redact_text(str(record["message"]))
    return {
        "message": text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "…",
        "field": redact_text(record["field"]) if record["field"] else record["field"],
        "http_status": record["http_status"],
        "source": f"{record['topic']}[{record['partition']}]@{record['offset']}",
        "record_time": iso_ms(record["timestamp"]),
        "dead_lettered_at": iso_ms(record["dead_lettered_at"]),
        "attempts": record["attempts"],
        "pixel_id": record["pixel_id"],
        "value_bytes": len(record["value"]),
        "has_key": record["key"] is not None,
        "dlq_position": dlq_position,
    }


class Inspection:
    def __init__(self, examples_per_reason: int) -> None:
        self._letters = DeadLetters()
        self._examples = examples_per_reason
        self.reasons: dict[str, ReasonSummary] = {}
        self.total = 0

    def visit(self, message: Message) -> None:
        self.total += 1
        record = self._letters.record(message)
        reason = str(record["reason"]) if record is not None else UNREADABLE
        summary = self.reasons.setdefault(reason, ReasonSummary())
        summary.count += 1
        if len(summary.examples) < self._examples:
            summary.examples.append(example_of(message, record))
        if record is None:
            return
        at = int(record["dead_lettered_at"])
        summary.first_ms = at if summary.first_ms is None else min(summary.first_ms, at)
        summary.last_ms = at if summary.last_ms is None else max(summary.last_ms, at)
        summary.max_attempts = max(summary.max_attempts, int(record["attempts"]))
        summary.topics[str(record["topic"])] += 1


def inspect_command(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    try:
        _require_kafka(config)
        if args.examples < 0:
            raise RangeError("--examples must be 0 or more")
    except (ConfigError, RangeError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.observability.log_level, config.observability.log_format)
    inspection = Inspection(args.examples)
    topic = config.dlq.topic
    try:
        with admin_consumer(config, f"{config.kafka.group_id}-dlq-inspect") as consumer:
            try:
                keys = partitions_of(consumer, [topic])
            except MissingTopic:
                keys = []  # nothing was ever dead-lettered
            complete = read_range(consumer, watermarks(consumer, keys), inspection.visit)
    except (RangeError, KafkaException, KafkaUnreachable) as exc:
        return range_failure(exc)
    ordered = sorted(inspection.reasons.items(), key=lambda item: -item[1].count)
    report: dict[str, Any] = {
        "dlq_topic": topic,
        "total": inspection.total,
        "complete": complete,
        "reasons": {reason: summary.as_dict() for reason, summary in ordered},
    }
    print_report(report)
    return EXIT_OK
