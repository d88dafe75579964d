"""`capi-consumer backfill`: re-send a bounded range of history through the live pipeline.

A backfill is the live `Pipeline` with a `Gate`: its own consumer group
(`<kafka.group_id>-backfill-<run id>`), start offsets, and an end-offset snapshot it stops at.
The start positions are committed before the run with the snapshot as metadata, and every later
commit carries it too, so re-running the same command (same run id) resumes with the original
snapshot instead of chasing events that arrived since. The live group's offsets are never read
or written.

Time bounds are Kafka record timestamps. `offsets_for_times` only moves the start forward where
the broker answers it; every record is also checked against the bounds on the client, so the
result is the same on every broker (the librdkafka mock broker never answers).

Before sending, the range is read once for its record timestamps (values are not decoded): the
count of records to read (the progress total) and how many are already past the API's 7-day
window are reported up front. The authoritative decision per event is made on the mapped event's
timestamp when it is sent; the final summary counts those.

The helpers here (snapshots, watermarks, bounded reads, `run_bounded`) also serve
`capi-consumer dlq` (consumer/cli/dlq.py).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumer.cli.progress import Progress, print_report
from consumer.cli.run import run_pipeline
from consumer.cli.startup import SMALLEST_EPOCH_MS, load_or_exit
from consumer.config import AppConfig, ConfigError
from consumer.errors import ConsumerError
from consumer.exit_codes import EXIT_CONFIG, EXIT_OK, EXIT_UNEXPECTED
from consumer.live.gate import Gate
from consumer.live.kafka_clients import consumer_settings
from consumer.live.pipeline import Pipeline
from consumer.live.reachability import (
    ErrorCause,
    KafkaUnreachable,
    await_metadata,
    client_logger,
    known_topics,
    missing_topics,
)
from consumer.observability.logs import setup_logging
from transforms.capi_rules import WINDOW_PAST_MS

log = logging.getLogger("consumer.backfill")

TopicPartitionKey = tuple[str, int]

# Kafka's default `offset.metadata.max.bytes` is 4096; a commit with more metadata fails.
MAX_METADATA_BYTES = 4000
SAMPLE_SIZE = 5
_MASK = "***"
_MASKED_TOP_LEVEL = ("oppref",)
_MASKED_USER = ("ip_address", "user_agent", "obref")
_RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RangeError(ConsumerError, ValueError):
    """Range arguments that cannot be used; `str()` is the one line shown to the user."""


class MissingTopic(RangeError):
    """A topic the broker does not know."""


def range_failure(exc: RangeError | KafkaException | KafkaUnreachable) -> int:
    """Say why a range could not be resolved (one line on stderr); the exit code for it."""
    if isinstance(exc, RangeError):
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    if isinstance(exc, KafkaUnreachable):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNEXPECTED
    print(f"error: Kafka: {exc}", file=sys.stderr)
    return EXIT_UNEXPECTED


# -- parsing (pure) -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OffsetSpec:
    """`N` for every partition, or an explicit `TOPIC:PARTITION:OFFSET,...` list."""

    every: int | None = None
    listed: tuple[tuple[str, int, int], ...] = ()

    def offset_for(self, key: TopicPartitionKey) -> int | None:
        for topic, partition, offset in self.listed:
            if (topic, partition) == key:
                return offset
        return self.every

    def keys(self) -> set[TopicPartitionKey]:
        return {(topic, partition) for topic, partition, _ in self.listed}

    def normalized(self) -> str:
        if self.every is not None:
            return str(self.every)
        return ",".join(f"{t}:{p}:{o}" for t, p, o in self.listed)


def _non_negative(text: str, option: str, what: str) -> int:
    value = text.strip()
    if not value.isdigit():
        raise RangeError(f"{option}: {what} must be a non-negative integer, got {text!r}")
    return int(value)


def parse_offsets(text: str, option: str) -> OffsetSpec:
    if ":" not in text:
        return OffsetSpec(every=_non_negative(text, option, "an offset"))
    entries: dict[TopicPartitionKey, int] = {}
    for part in text.split(","):
        pieces = part.strip().rsplit(":", 2)
        if len(pieces) != 3 or not pieces[0]:
            raise RangeError(f"{option}: expected TOPIC:PARTITION:OFFSET, got {part.strip()!r}")
        key = (pieces[0], _non_negative(pieces[1], option, "a partition"))
        if key in entries:
            raise RangeError(f"{option}: {key[0]}:{key[1]} is given twice")
        entries[key] = _non_negative(pieces[2], option, "an offset")
    listed = tuple(sorted((t, p, o) for (t, p), o in entries.items()))
    return OffsetSpec(listed=listed)


def parse_time_ms(text: str, option: str) -> int:
    """ISO-8601 (a time without an offset is UTC) or epoch milliseconds."""
    value = text.strip()
    if value.isdigit():
        ms = int(value)
        if ms < SMALLEST_EPOCH_MS:
            raise RangeError(f"{option}: {value} looks like epoch seconds; give epoch milliseconds")
        return ms
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RangeError(
            f"{option}: {text!r} is neither ISO-8601 (2026-11-23T10:00:00Z) nor epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def parse_partitions(text: str, option: str = "--partitions") -> frozenset[int]:
    numbers = [_non_negative(p, option, "a partition") for p in text.split(",") if p.strip()]
    if not numbers:
        raise RangeError(f"{option}: no partition given")
    return frozenset(numbers)


def parse_topics(text: str, option: str = "--topics") -> tuple[str, ...]:
    topics = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not topics:
        raise RangeError(f"{option}: no topic given")
    return topics


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class BackfillRange:
    """What to re-send. A `TOPIC:PARTITION:OFFSET` list also selects partitions: only the
    partitions it names are backfilled (a whole-topic re-send is never implied by a list)."""

    topics: tuple[str, ...]
    partitions: frozenset[int] | None = None
    from_offset: OffsetSpec | None = None
    to_offset: OffsetSpec | None = None
    from_time_ms: int | None = None
    to_time_ms: int | None = None
    from_beginning: bool = False

    def __post_init__(self) -> None:
        if not self.topics:
            raise RangeError("no topic: set kafka.topics or give --topics")
        if self.from_beginning and self.from_offset is not None:
            raise RangeError("--from-beginning and --from-offset exclude each other")
        if self.from_offset is None and self.from_time_ms is None and not self.from_beginning:
            raise RangeError("choose a start: --from-offset, --from-time or --from-beginning")
        if (
            self.from_time_ms is not None
            and self.to_time_ms is not None
            and self.from_time_ms >= self.to_time_ms
        ):
            raise RangeError("--from-time must be before --to-time")
        for spec, option in ((self.from_offset, "--from-offset"), (self.to_offset, "--to-offset")):
            for topic, _ in sorted(spec.keys()) if spec else ():
                if topic not in self.topics:
                    raise RangeError(f"{option}: topic {topic!r} is not one of {list(self.topics)}")
        if self.from_offset is not None and self.to_offset is not None:
            keys = self.from_offset.keys() | self.to_offset.keys()
            probes = keys or {("", 0)}
            for key in sorted(probes):
                start, end = self.from_offset.offset_for(key), self.to_offset.offset_for(key)
                if start is not None and end is not None and start > end:
                    raise RangeError(f"--from-offset {start} is past --to-offset {end}")

    @property
    def listed_keys(self) -> set[TopicPartitionKey] | None:
        """Partitions named by explicit offset lists, or None when there are none."""
        specs = [s for s in (self.from_offset, self.to_offset) if s is not None and s.listed]
        if not specs:
            return None
        return set().union(*(s.keys() for s in specs))

    def selects(self, key: TopicPartitionKey) -> bool:
        if key[0] not in self.topics:
            return False
        if self.partitions is not None and key[1] not in self.partitions:
            return False
        listed = self.listed_keys
        return listed is None or key in listed

    def start(self, key: TopicPartitionKey, low: int, at_time: int | None) -> int:
        """First offset to read; `at_time` is the broker's `offsets_for_times` answer or None."""
        given = self.from_offset.offset_for(key) if self.from_offset is not None else None
        if given is None and self.from_time_ms is None and not self.from_beginning:
            raise RangeError(
                f"no start for {key[0]}:{key[1]}: name it in --from-offset, "
                "or add --from-beginning or --from-time"
            )
        candidates = [c for c in (given, at_time) if c is not None]
        return max([low, *candidates])

    def end(self, key: TopicPartitionKey, high: int) -> int:
        """Exclusive end: `--to-offset` when given for the partition, never past the high
        watermark (a backfill does not chase new events)."""
        given = self.to_offset.offset_for(key) if self.to_offset is not None else None
        return high if given is None else min(given, high)

    def normalized(self) -> dict[str, Any]:
        return {
            "topics": sorted(self.topics),
            "partitions": sorted(self.partitions) if self.partitions is not None else None,
            "from_offset": self.from_offset.normalized() if self.from_offset else None,
            "to_offset": self.to_offset.normalized() if self.to_offset else None,
            "from_time_ms": self.from_time_ms,
            "to_time_ms": self.to_time_ms,
            "from_beginning": self.from_beginning,
        }

    def run_id(self) -> str:
        """Derived from the normalized range, so the same command resumes the same run."""
        canonical = orjson.dumps(self.normalized(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        described = self.normalized()
        described["from_time"] = iso_ms(self.from_time_ms)
        described["to_time"] = iso_ms(self.to_time_ms)
        return {k: v for k, v in described.items() if v not in (None, False)}


def range_from_args(args: argparse.Namespace, default_topics: list[str]) -> BackfillRange:
    return BackfillRange(
        topics=parse_topics(args.topics) if args.topics else tuple(default_topics),
        partitions=parse_partitions(args.partitions) if args.partitions else None,
        from_offset=parse_offsets(args.from_offset, "--from-offset") if args.from_offset else None,
        to_offset=parse_offsets(args.to_offset, "--to-offset") if args.to_offset else None,
        from_time_ms=parse_time_ms(args.from_time, "--from-time") if args.from_time else None,
        to_time_ms=parse_time_ms(args.to_time, "--to-time") if args.to_time else None,
        from_beginning=args.from_beginning,
    )


def run_id_of(args: argparse.Namespace, backfill_range: BackfillRange) -> str:
    if args.run_id is None:
        return backfill_range.run_id()
    if not _RUN_ID.fullmatch(args.run_id):
        raise RangeError("--run-id: 1 to 64 characters among letters, digits, '.', '_', '-'")
    return str(args.run_id)


def masked_event(event: dict[str, Any]) -> dict[str, Any]:
    """A mapped event fit for a terminal: click references, IP and user agent masked (the
    identifiers the mapping sends in clear; the others are SHA-256 hashes)."""
    masked = {k: (_MASK if k in _MASKED_TOP_LEVEL else v) for k, v in event.items()}
    user = masked.get("user")
    if isinstance(user, dict):
        masked["user"] = {k: (_MASK if k in _MASKED_USER else v) for k, v in user.items()}
    return masked


@dataclass(slots=True)
class Sample:
    """The first few mapped events of a dry run, masked."""

    limit: int = SAMPLE_SIZE
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, event: dict[str, Any]) -> None:
        if len(self.events) < self.limit:
            self.events.append(masked_event(event))


# -- Kafka: metadata, snapshots, bounded reads --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The exclusive end offsets of a bounded run, stored as commit metadata."""

    end: dict[TopicPartitionKey, int]
    taken_at_ms: int

    def encode(self) -> str | None:
        """Compact JSON, or None when it would not fit Kafka's metadata limit."""
        by_topic: dict[str, dict[str, int]] = {}
        for (topic, partition), end in sorted(self.end.items()):
            by_topic.setdefault(topic, {})[str(partition)] = end
        text = orjson.dumps({"v": 1, "at": self.taken_at_ms, "end": by_topic}).decode()
        return text if len(text.encode()) <= MAX_METADATA_BYTES else None

    @classmethod
    def decode(cls, text: str | None) -> Snapshot | None:
        if not text:
            return None
        try:
            data = orjson.loads(text)
            end = {
                (topic, int(partition)): int(offset)
                for topic, partitions in data["end"].items()
                for partition, offset in partitions.items()
            }
            return cls(end, int(data["at"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None


@contextlib.contextmanager
def admin_consumer(config: AppConfig, group_id: str) -> Iterator[Consumer]:
    """A consumer for metadata, committed offsets and bounded reads. It never subscribes, so it
    never joins `group_id`; it commits only when told to (`store_snapshot`). `KafkaUnreachable`
    when no broker answers within `kafka.unreachable_timeout_s`."""
    cause = ErrorCause()
    settings = consumer_settings(config.kafka_consumer_settings())
    settings.update(
        {
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "allow.auto.create.topics": False,
            "logger": client_logger("librdkafka.admin"),
            "error_cb": cause,
        }
    )
    consumer = Consumer(settings)
    try:
        await_metadata(
            consumer, str(settings["bootstrap.servers"]), config.kafka.unreachable_timeout_s, cause
        )
        yield consumer
    finally:
        consumer.close()


def partitions_of(
    consumer: Consumer, topics: tuple[str, ...] | list[str]
) -> list[TopicPartitionKey]:
    # Metadata for all topics: naming one could create it on a broker that auto-creates.
    known = known_topics(consumer.list_topics(timeout=10))
    missing = missing_topics(known, topics)
    if missing:
        raise MissingTopic(f"topic {missing[0]!r} does not exist")
    return [(topic, partition) for topic in topics for partition in known[topic]]


def watermarks(
    consumer: Consumer, keys: list[TopicPartitionKey]
) -> dict[TopicPartitionKey, tuple[int, int]]:
    marks: dict[TopicPartitionKey, tuple[int, int]] = {}
    for topic, partition in keys:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        marks[(topic, partition)] = (low, high)
    return marks


def offsets_at(
    consumer: Consumer, keys: list[TopicPartitionKey], time_ms: int
) -> dict[TopicPartitionKey, int]:
    """`offsets_for_times` answers that can be trusted; a failure or -1 gives no entry."""
    try:
        answers = consumer.offsets_for_times(
            [TopicPartition(topic, partition, time_ms) for topic, partition in keys], timeout=10
        )
    except KafkaException as exc:
        log.info(
            "offsets_for_times unavailable; filtering on the client", extra={"error": str(exc)}
        )
        return {}
    found = {
        (tp.topic, tp.partition): tp.offset for tp in answers if tp.error is None and tp.offset >= 0
    }
    if len(found) < len(keys):
        log.info(
            "offsets_for_times gave no answer for some partitions; reading them from the start",
            extra={"answered": len(found), "partitions": len(keys)},
        )
    return found


def committed(
    consumer: Consumer, keys: list[TopicPartitionKey]
) -> tuple[dict[TopicPartitionKey, int], Snapshot | None]:
    """The group's committed positions (only partitions that have one) and the snapshot stored
    with them, if any."""
    answers = consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=10)
    positions: dict[TopicPartitionKey, int] = {}
    snapshot: Snapshot | None = None
    for tp in answers:
        if tp.offset >= 0:
            positions[(tp.topic, tp.partition)] = tp.offset
        if snapshot is None:
            snapshot = Snapshot.decode(tp.metadata)
    return positions, snapshot


def read_range(
    consumer: Consumer,
    ranges: dict[TopicPartitionKey, tuple[int, int]],
    visit: Callable[[Message], None],
    idle_timeout_s: float = 30.0,
) -> bool:
    """Visit every record in `[start, end)` of each partition once, by assignment (no group, no
    commit). False when the broker stopped answering for `idle_timeout_s` before the end."""
    pending = {key: bounds for key, bounds in ranges.items() if bounds[0] < bounds[1]}
    if not pending:
        return True
    consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in pending.items()])
    last_seen = time.monotonic()

    def finish(key: TopicPartitionKey) -> None:
        del pending[key]
        consumer.pause([TopicPartition(*key)])

    try:
        while pending:
            messages = consumer.consume(10_000, 0.1)
            if not messages:
                if time.monotonic() - last_seen > idle_timeout_s:
                    return False
                continue
            last_seen = time.monotonic()
            for message in messages:
                key = (message.topic() or "", message.partition() or 0)
                bounds = pending.get(key)
                if bounds is None:
                    continue
                error = message.error()
                if error is not None:
                    # End of partition: whatever is missing below `end` no longer exists.
                    if error.code() == KafkaError._PARTITION_EOF:
                        finish(key)
                    continue
                offset = message.offset() or 0
                if offset < bounds[1]:
                    visit(message)
                if offset >= bounds[1] - 1:
                    finish(key)
        return True
    finally:
        consumer.unassign()


# -- a bounded run ------------------------------------------------------------------------------


@dataclass(slots=True)
class Bounds:
    """A bounded run resolved against the broker, before it starts."""

    group_id: str
    topics: list[str]
    snapshot: Snapshot
    resumed: bool
    # Per partition of the snapshot: the first offset still to read (committed, else start).
    resume_at: dict[TopicPartitionKey, int]
    # Per partition of the topics: the high watermark.
    high: dict[TopicPartitionKey, int]
    # The group's committed positions (partitions that have one).
    positions: dict[TopicPartitionKey, int]

    @property
    def remaining(self) -> dict[TopicPartitionKey, tuple[int, int]]:
        return {
            key: (self.resume_at[key], end)
            for key, end in self.snapshot.end.items()
            if self.resume_at[key] < end
        }

    @property
    def total(self) -> int:
        return sum(end - start for start, end in self.remaining.values())

    def initial_positions(self) -> dict[TopicPartitionKey, int]:
        """Where each partition of the topics stands before the run: the start of what remains;
        the end of a partition of the run with nothing to read; the high watermark of one
        outside the run."""
        positions = {key: self.positions.get(key, high) for key, high in self.high.items()}
        positions.update(self.snapshot.end)
        positions.update({key: start for key, (start, _) in self.remaining.items()})
        return positions


def resolve_bounds(
    *,
    group_id: str,
    topics: list[str],
    marks: dict[TopicPartitionKey, tuple[int, int]],
    starts: dict[TopicPartitionKey, int],
    fresh_end: dict[TopicPartitionKey, int],
    positions: dict[TopicPartitionKey, int],
    stored: Snapshot | None,
    now_ms: int,
) -> Bounds:
    """Reuse the stored snapshot when there is one (a resumed run), else take `fresh_end`.
    `marks` covers every partition of the topics; the others only the partitions of the run."""
    end = dict(fresh_end)
    if stored is not None:
        end.update({key: e for key, e in stored.end.items() if key in fresh_end})
    snapshot = Snapshot(end, stored.taken_at_ms if stored is not None else now_ms)
    resume_at = {key: max(positions.get(key, starts[key]), marks[key][0]) for key in end}
    high = {key: high for key, (_, high) in marks.items()}
    return Bounds(group_id, topics, snapshot, stored is not None, resume_at, high, positions)


def store_snapshot(consumer: Consumer, bounds: Bounds) -> None:
    """Commit every partition's initial position with the snapshot as metadata, before the run,
    so a run killed at any point resumes with this snapshot.

    Kafka refuses the commit while the group has live members: then the run goes on without it
    (the pipeline stores the snapshot with its first commit)."""
    metadata = bounds.snapshot.encode()
    if metadata is None:
        log.warning(
            "too many partitions to store the end snapshot with the offsets; "
            "a resumed run will take a new snapshot"
        )
        return
    initial = bounds.initial_positions()
    offsets = [TopicPartition(t, p, position, metadata) for (t, p), position in initial.items()]
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        log.warning("could not store the snapshot before the run", extra={"error": str(exc)})
        return
    bounds.positions = initial


def reached_end(
    ranges: dict[TopicPartitionKey, tuple[int, int]],
    positions: dict[TopicPartitionKey, int],
    marks: dict[TopicPartitionKey, tuple[int, int]],
) -> bool:
    """Every range committed up to its end (or retention passed it)."""
    return all(
        positions.get(key, -1) >= end or marks[key][0] >= end for key, (_, end) in ranges.items()
    )


def run_bounded(
    config: AppConfig,
    bounds: Bounds,
    gate: Gate,
    label: str,
    report: dict[str, Any],
) -> int:
    """Run the live pipeline over what remains of `bounds`, show progress, print the report and
    return the exit code. A dry run joins a group of its own and commits nothing."""
    remaining = bounds.remaining
    report["total"] = bounds.total
    if not remaining:
        report.update({"complete": True, "read": 0, "delivered": 0, "exit_code": EXIT_OK})
        print_report(report)
        return EXIT_OK
    # Partitions with nothing left (outside the range, or done) get an end of 0: whatever
    # arrives there is past the end, so it is neither processed nor committed.
    end_offsets = dict.fromkeys(bounds.high, 0)
    end_offsets.update({key: end for key, (_, end) in remaining.items()})
    start_offsets = dict(bounds.high)
    start_offsets.update({key: start for key, (start, _) in remaining.items()})
    gate = replace(
        gate, partitions=frozenset(remaining), end_offsets=end_offsets, start_offsets=start_offsets
    )
    if gate.dry_run:
        group_id = f"{bounds.group_id}-dry-run"
    else:
        group_id = bounds.group_id
        # None when too large (warned already).
        gate = replace(gate, commit_metadata=bounds.snapshot.encode())
    pipeline = Pipeline(config, group_id=group_id, topics=bounds.topics, gate=gate)
    progress = Progress(label, bounds.total)
    pipeline.on_progress = lambda p: progress.update(p.summary)
    code = run_pipeline(config, pipeline, until_caught_up=True)
    progress.close()
    report.update(pipeline.summary.as_dict())
    if not gate.dry_run:
        with admin_consumer(config, bounds.group_id) as consumer:
            keys = list(remaining)
            positions, _ = committed(consumer, keys)
            report["complete"] = reached_end(remaining, positions, watermarks(consumer, keys))
        if not report["complete"]:
            report["hint"] = "stopped before the end: run the same command again to resume"
    report["exit_code"] = code
    print_report(report)
    return code


def require_config(config: AppConfig, dry_run: bool) -> None:
    """`run`'s requirements; a dry run sends nothing, so it needs no API key."""
    config.require_for_run(need_api_key=not dry_run)


# -- the command --------------------------------------------------------------------------------


@dataclass(slots=True)
class RangeCount:
    """The up-front count: records to read, those in the time range, those already too old."""

    records: int = 0
    in_time_range: int = 0
    too_old: int = 0

    def visitor(self, backfill_range: BackfillRange, now_ms: int) -> Callable[[Message], None]:
        oldest_allowed = now_ms - WINDOW_PAST_MS
        low = backfill_range.from_time_ms
        high = backfill_range.to_time_ms

        def visit(message: Message) -> None:
            self.records += 1
            _, timestamp = message.timestamp()
            if (low is not None and timestamp < low) or (high is not None and timestamp >= high):
                return
            self.in_time_range += 1
            if timestamp < oldest_allowed:
                self.too_old += 1

        return visit


def command(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    try:
        require_config(config, args.dry_run)
        backfill_range = range_from_args(args, config.kafka.topics)
        run_id = run_id_of(args, backfill_range)
        rate = args.max_events_per_second
        if rate is not None and not rate > 0:
            raise RangeError("--max-events-per-second must be greater than 0")
    except (ConfigError, RangeError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.observability.log_level, config.observability.log_format)
    group_id = f"{config.kafka.group_id}-backfill-{run_id}"
    now_ms = time.time_ns() // 1_000_000
    count = RangeCount()
    try:
        with admin_consumer(config, group_id) as consumer:
            all_keys = partitions_of(consumer, backfill_range.topics)
            keys = [key for key in all_keys if backfill_range.selects(key)]
            if not keys:
                raise RangeError("the range selects no existing partition")
            marks = watermarks(consumer, all_keys)
            at_time = (
                offsets_at(consumer, keys, backfill_range.from_time_ms)
                if backfill_range.from_time_ms is not None
                else {}
            )
            starts = {k: backfill_range.start(k, marks[k][0], at_time.get(k)) for k in keys}
            fresh_end = {k: backfill_range.end(k, marks[k][1]) for k in keys}
            positions, stored = committed(consumer, keys)
            bounds = resolve_bounds(
                group_id=group_id,
                topics=list(backfill_range.topics),
                marks=marks,
                starts=starts,
                fresh_end=fresh_end,
                positions=positions,
                stored=stored,
                now_ms=now_ms,
            )
            if not args.dry_run and not bounds.resumed:
                store_snapshot(consumer, bounds)
            log.info(
                "backfill resolved; counting the range",
                extra={
                    "run_id": run_id,
                    "group": group_id,
                    "resumed": bounds.resumed,
                    "partitions": len(keys),
                    "records": bounds.total,
                },
            )
            if not read_range(consumer, bounds.remaining, count.visitor(backfill_range, now_ms)):
                log.warning("the broker stopped answering while counting; the count is partial")
    except (RangeError, KafkaException, KafkaUnreachable) as exc:
        return range_failure(exc)
    expired: Literal["dlq", "skip"] = "dlq" if args.dlq_expired else "skip"
    if count.too_old:
        log.warning(
            "events in the range are older than the API's 7-day window",
            extra={
                "too_old": count.too_old,
                "action": "dead-lettered" if expired == "dlq" else "skipped",
            },
        )
    sample = Sample()
    gate = Gate(
        from_time_ms=backfill_range.from_time_ms,
        to_time_ms=backfill_range.to_time_ms,
        expired=expired,
        max_events_per_second=rate,
        dry_run=args.dry_run,
        on_dry_run_event=sample.add if args.dry_run else None,
    )
    report: dict[str, Any] = {
        "command": "backfill",
        "run_id": run_id,
        "group": group_id,
        "dry_run": args.dry_run,
        "resumed": bounds.resumed,
        "snapshot_taken_at": iso_ms(bounds.snapshot.taken_at_ms),
        "range": backfill_range.describe(),
        "up_front": {
            "records": count.records,
            "in_time_range": count.in_time_range,
            "too_old": count.too_old,
        },
    }
    if args.dry_run:
        report["sample"] = sample.events  # filled while the run goes
    return run_bounded(config, bounds, gate, f"backfill {run_id}", report)
