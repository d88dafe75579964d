"""The live loop: source → decode → map → route/batch → deliver → settle (commit or DLQ).

Threads: this (main) thread owns Kafka (consume, pause/resume, commits, rebalance callbacks),
decoding, mapping, batching, the DLQ producer and the offset tracker; the delivery thread owns
HTTP. Batches go over as whole units and results come back on a queue, so nothing in the hot path
awaits per event, and a revoke can wait for in-flight batches without stopping HTTP.

Every consumed offset settles exactly once: delivered, skipped, filtered, or dead-lettered and
acknowledged by the broker. Only the highest contiguous settled offset is committed.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import queue
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Literal, cast

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumer.avro.decoding import DecodeFailure, Decoder, RegistryRejected, RegistryUnavailable
from consumer.config import AppConfig, Route
from consumer.live.batching import Batch, Batcher, Pending
from consumer.live.delivery import (
    ApiKey,
    BatchResult,
    DeliveryThread,
    FatalDeliveryError,
    Sender,
    describe,
    dlq_reason,
)
from consumer.live.dlq import DeadLetter, DeadLetterWriter, Origin
from consumer.live.kafka_clients import consumer_settings, producer_settings
from consumer.live.offsets import OffsetTracker
from consumer.live.reachability import (
    ErrorCause,
    MissingTopics,
    Throttle,
    await_metadata,
    client_logger,
    missing_topics,
    shape,
)
from consumer.observability.inspector import Inspector, api_error_field
from consumer.observability.metrics import IDENTITY_FIELDS, Metrics
from consumer.redaction import redact_log
from transforms import Failed, Mapped, Skipped, capi_rules, map_values
from transforms.paths import PathReader

log = logging.getLogger("consumer.pipeline")

TopicPartitionKey = tuple[str, int]
# How often the loop asks which subscribed topics exist (a metadata request).
_TOPIC_CHECK_INTERVAL_S = 5.0
ExitReason = Literal["stopped", "caught_up", "fatal", "breaker", "error"]


@dataclass(slots=True)
class Plan:
    """What a bounded run (backfill, DLQ replay) changes in the live loop."""

    # Start positions for partitions the group has no committed offset for.
    start_offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)
    # Exclusive end offsets: records at or past them are not processed; done when all reached.
    end_offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)
    # Only these partitions are processed (others are settled as filtered).
    partitions: set[TopicPartitionKey] | None = None
    # Record-timestamp bounds [from, to) checked on every record.
    from_time_ms: int | None = None
    to_time_ms: int | None = None
    # Events past the API's 7-day window: dead-letter them, or count and skip.
    expired: Literal["dlq", "skip"] = "dlq"
    max_events_per_second: float | None = None
    dry_run: bool = False
    commit_metadata: str | None = None
    # Turns a consumed record into (value bytes to decode, origin for the DLQ) — DLQ replay.
    unwrap: Callable[[Message], tuple[bytes | None, Origin]] | None = None
    # Called with each mapped event in a dry run (a sample for the summary).
    on_dry_run_event: Callable[[dict[str, Any]], None] | None = None
    # Records it refuses are settled as filtered (DLQ replay: `--reason`).
    accept: Callable[[Message], bool] | None = None


@dataclass(slots=True)
class Summary:
    read: int = 0
    mapped: int = 0
    delivered: int = 0
    filtered: int = 0
    requests: int = 0
    batches: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    started_at: float = field(default_factory=time.monotonic)
    first_read_at: float | None = None  # throughput is measured from the first record
    finished_at: float | None = None
    # Process CPU (all threads) at the first record and at the last commit: how busy the
    # consumer was while it had work (`busy`).
    first_read_cpu_s: float | None = None
    last_commit_at: float | None = None
    last_commit_cpu_s: float | None = None
    # The main thread's seconds runnable but waiting for a core (other processes had it).
    first_read_cpu_wait_s: float | None = None
    last_commit_cpu_wait_s: float | None = None

    @property
    def elapsed_s(self) -> float:
        return (self.finished_at or time.monotonic()) - self.started_at

    @property
    def events_per_s(self) -> float:
        if self.first_read_at is None:
            return 0.0
        busy = (self.finished_at or time.monotonic()) - self.first_read_at
        return self.read / busy if busy > 0 else 0.0

    def busy(self) -> dict[str, float]:
        """Wall and process CPU seconds from the first record to the last commit, and their
        ratio (1.0: never idle while a backlog waited); empty when nothing was read."""
        if self.first_read_at is None or self.first_read_cpu_s is None:
            return {}
        if self.last_commit_at is None or self.last_commit_cpu_s is None:
            return {}
        wall = self.last_commit_at - self.first_read_at
        cpu = self.last_commit_cpu_s - self.first_read_cpu_s
        busy = {
            "busy_s": round(wall, 3),
            "busy_cpu_s": round(cpu, 3),
            "utilization": round(cpu / wall, 3) if wall > 0 else 0.0,
        }
        if self.first_read_cpu_wait_s is not None and self.last_commit_cpu_wait_s is not None:
            busy["busy_cpu_wait_s"] = round(
                self.last_commit_cpu_wait_s - self.first_read_cpu_wait_s, 3
            )
        return busy

    def as_dict(self) -> dict[str, Any]:
        elapsed = self.elapsed_s
        return {
            "read": self.read,
            "mapped": self.mapped,
            "delivered": self.delivered,
            "filtered": self.filtered,
            "skipped": dict(self.skipped),
            "dead_lettered": dict(self.dead_lettered),
            "batches": self.batches,
            "requests": self.requests,
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(self.events_per_s, 1),
        }


class _Router:
    """Pixel of a CA event: the first route whose field matches, else the default pixel.

    The event comes as its values at `paths` (the mapping's), to which the routes' fields are
    added: the decoder reads them all in one pass.
    """

    def __init__(
        self, routes: list[Route], default_pixel: str | None, paths: list[tuple[str, ...]]
    ) -> None:
        self._routes = []
        for route in routes:
            path = tuple(route.field.split("."))
            if path not in paths:
                paths.append(path)
            self._routes.append((paths.index(path), frozenset(route.values), route.pixel_id))
        self.default_pixel = default_pixel
        # Without routes every event goes to the default pixel: no call per event.
        self.only_pixel = None if self._routes else default_pixel

    def pixel_of(self, values: tuple[Any, ...]) -> str | None:
        for slot, accepted, pixel in self._routes:
            value = values[slot]
            if value is not None and str(value) in accepted:
                return pixel
        return self.default_pixel


def api_keys(config: AppConfig) -> dict[str, ApiKey]:
    capi = config.capi
    default_value = capi.api_key.get_secret_value() if capi.api_key else None
    default = ApiKey(default_value, capi.api_key_file)
    keys: dict[str, ApiKey] = {}
    if capi.pixel_id:
        keys[capi.pixel_id] = default
    for route in capi.routes:
        if route.api_key is not None or route.api_key_file is not None:
            value = route.api_key.get_secret_value() if route.api_key else None
            keys[route.pixel_id] = ApiKey(value, route.api_key_file)
        else:
            keys.setdefault(route.pixel_id, default)
    return keys


def kafka_settings(config: AppConfig) -> dict[str, Any]:
    """`kafka.settings` (and bootstrap): filter them with `consumer_settings` or
    `producer_settings` for a client."""
    return config.kafka_client_settings()


class Pipeline:
    def __init__(
        self,
        config: AppConfig,
        *,
        group_id: str | None = None,
        topics: list[str] | None = None,
        plan: Plan | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.plan = plan
        self.metrics = metrics or Metrics()
        self.summary = Summary()
        self._clock = clock
        self._topics = topics or list(config.kafka.topics)
        self._group_id = group_id or config.kafka.group_id
        self._compiled = config.compile()
        self._decoder = Decoder(config.schema_settings)
        paths = list(self._compiled.event_reader.index)
        self._router = _Router(config.capi.routes, config.capi.pixel_id, paths)
        # Events come decoded as their values at `paths` (`map_values`): read from the bytes
        # by the compiled reader where it can, else read from the whole decoded record.
        self._read_values = PathReader(paths).read
        self._identities: dict[tuple[tuple[str, ...], bool], frozenset[str]] = {}
        self._decode = (
            self._decoder.projector(
                paths, self._compiled.items, list(self._compiled.item_reader.index)
            )
            or self._decoder.decode_batch
        )
        self._batcher = Batcher(
            config.batch.max_events, config.batch.max_bytes, config.batch.linger_ms / 1000
        )
        self._tracker = OffsetTracker()
        self._dumps = orjson.dumps
        self._integration_source = capi_rules.validate_integration_source(
            config.capi.integration_source
        )
        self._kafka_cause = ErrorCause()
        self._repeats = Throttle()  # each distinct Kafka error logged at most once a minute
        self._kafka_was_down = False
        self.kafka_reachable = False
        self._delivery: DeliveryThread | None = None
        if plan is None or not plan.dry_run:
            sender = Sender(
                config.capi.base_url,
                api_keys(config),
                config.delivery,
                self.metrics,
                self._integration_source,
                config.capi.validate_only,
                clock,
            )
            self._delivery = DeliveryThread(sender)
        dlq_settings = producer_settings(kafka_settings(config))
        dlq_settings.update(config.dlq.producer_settings)
        self._dlq = DeadLetterWriter(
            dlq_settings, config.dlq.topic, clock, error_cb=self._on_kafka_error
        )
        self._consumer: Consumer | None = None
        self._assigned: set[TopicPartitionKey] = set()
        self._paused = False
        self._stop_requested = False
        self._closing = False
        self._fatal: FatalDeliveryError | None = None
        self._fatal_error: str | None = None  # a non-API fault no retry can fix
        self._breaker_tripped = False
        self._outcomes_seen = 0  # events settled or dead-lettered so far (the breaker's clock)
        self._dead_seqs: deque[int] = deque()  # their sequence numbers, within the window
        self._in_flight: dict[int, Batch] = {}
        self._in_flight_by_partition: Counter[TopicPartitionKey] = Counter()
        self._pending_bytes = 0
        self._stalled: list[Message] = []  # consumed, not decodable yet (registry down)
        self._stalled_retry_at = 0.0
        self._stalled_attempt = 0
        self._rate_next_at = 0.0
        self._finished_partitions: set[TopicPartitionKey] = set()
        self._end_snapshot: dict[TopicPartitionKey, int] = {}
        self._last_commit = 0.0
        self._last_gauges = 0.0
        self._last_caught_up_check = 0.0
        self._last_broker_check = 0.0
        self._group_joined = False  # the first assignment (maybe empty: a standby) arrived
        self._subscribed_at: float | None = None
        self._join_wait_logged = False
        self.heartbeat = time.monotonic()
        # kafka_reachable: a broker answered, and librdkafka has not said "all brokers down"
        # since (set by the error callback, which the DLQ producer shares).
        self._missing_topics: list[str] | None = None  # None: not checked yet
        self._topics_checked_at = -_TOPIC_CHECK_INTERVAL_S
        self.on_progress: Callable[[Pipeline], None] | None = None
        # Off by default; when off it costs one attribute check per settled batch.
        self.inspector = (
            Inspector(config.inspector.max_events, clock) if config.inspector.enabled else None
        )
        self.ran = False  # it subscribed: its summary means something

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop_requested = True

    @property
    def fatal(self) -> FatalDeliveryError | None:
        return self._fatal

    @property
    def fatal_error(self) -> str | None:
        return self._fatal_error

    @property
    def credentials_rejected(self) -> bool:
        return self._fatal is not None and self._fatal.status in (401, 403, 404)

    @property
    def projection(self) -> bool:
        """Whether the decoder reads only the values the mapping needs (the fast path)."""
        return self._decode != self._decoder.decode_batch

    def readiness(self) -> tuple[bool, str]:
        """Ready: config valid (it was, to get here), the first assignment callback ran (an
        empty assignment counts), a subscribed topic exists, no "all brokers down" since the
        last broker response, no credential rejection. Read from the health thread."""
        if self.credentials_rejected:
            return False, "API credentials or pixel rejected"
        if not self.kafka_reachable:
            return False, "Kafka not reachable"
        missing = self._missing_topics
        if missing is None:
            return False, "checking the subscribed topics"
        if len(missing) == len(set(self._topics)):
            return False, "no subscribed topic exists: " + ", ".join(missing)
        if not self._group_joined:
            return False, "waiting for the first partition assignment"
        return True, "ok"

    def run(self, until_caught_up: bool = False) -> ExitReason:
        settings: dict[str, Any] = {"auto.offset.reset": "earliest"}
        settings.update(consumer_settings(self.config.kafka_consumer_settings()))
        # Not overridable: commits are ours, after the API accepted.
        settings.update(
            {
                "enable.partition.eof": True,
                "group.id": self._group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "error_cb": self._on_kafka_error,
                "on_commit": self._on_commit,
                "logger": client_logger("librdkafka.consumer"),
                # Subscribing to a misspelled topic must not create it.
                "allow.auto.create.topics": False,
            }
        )
        consumer = Consumer(settings)
        self._consumer = consumer
        log.info(
            "consumer starting",
            extra={
                "group": self._group_id,
                "topics": self._topics,
                "decoder": self._decoder.engine,
                "wire_format": self._decoder.wire_format,
                "projection": "on" if self.projection else "off",
            },
        )
        if self._delivery is not None:
            self._delivery.start()
        try:
            if until_caught_up or self.plan is not None:
                try:
                    self._end_snapshot = self._snapshot_end_offsets()
                except BaseException:
                    self._closing = True
                    consumer.close()
                    raise
            consumer.subscribe(
                self._topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self._subscribed_at = time.monotonic()
            self.ran = True
            log.info(
                "joining the consumer group; waiting for its partition assignment",
                extra={"group": self._group_id},
            )
            try:
                reason = self._loop(until_caught_up)
            except Exception:
                # Commit what is settled and leave the group cleanly, then report the error.
                self.summary.finished_at = time.monotonic()
                with contextlib.suppress(Exception):
                    self._shutdown("error")
                raise
            self.summary.finished_at = time.monotonic()
            self._shutdown(reason)
            return reason
        finally:
            if self.summary.finished_at is None:
                self.summary.finished_at = time.monotonic()
            if self._delivery is not None:
                self._delivery.stop()
            self._dlq.close()

    def _loop(self, until_caught_up: bool) -> ExitReason:
        consumer = self._consumer
        assert consumer is not None
        batch_size = self.config.kafka.consume_batch_size
        if self.plan is not None and self.plan.max_events_per_second:
            batch_size = max(1, min(batch_size, int(self.plan.max_events_per_second / 10)))
        while True:
            self.heartbeat = time.monotonic()
            self._settle_results(block_s=0)
            self._dlq.poll()
            if self._fatal is not None:
                return "fatal"
            if self._fatal_error is None and self._dlq.fatal_error is not None:
                self._fatal_error = self._dlq.fatal_error
            if self._fatal_error is not None:
                log.error(self._fatal_error)
                return "error"
            if self._breaker_tripped:
                return "breaker"
            if self._stop_requested:
                return "stopped"
            if self.heartbeat - self._topics_checked_at >= _TOPIC_CHECK_INTERVAL_S:
                self._topics_checked_at = self.heartbeat
                self._check_topics()
            if not self._group_joined:
                self._note_join_wait()
            now = self._clock()
            self._submit(self._batcher.due(now))
            self._retry_stalled(now)
            if self.heartbeat - self._last_commit >= self.config.kafka.commit_interval_s:
                self._last_commit = self.heartbeat
                self._commit(asynchronous=True)
                self._update_gauges()
                if self.on_progress is not None:
                    self.on_progress(self)
            if (until_caught_up or self.plan is not None) and self._caught_up():
                return "caught_up"
            self._apply_backpressure(now)
            rate_wait = self._rate_next_at - time.monotonic()
            if rate_wait > 0 and not self._paused:
                # --max-events-per-second: wait here rather than pause, which would cost a
                # fetch round trip per resume.
                self._settle_results(block_s=min(rate_wait, 0.05))
                continue
            if self._paused:
                # Keep calling consume (group membership, rebalances) while waiting on results;
                # whatever it still returns is processed, never dropped.
                messages = consumer.consume(batch_size, 0)
                if not messages:
                    self._settle_results(block_s=0.05)
                    continue
            else:
                messages = consumer.consume(batch_size, 0.05 if not self._in_flight else 0.01)
            if messages:
                self._note_reachable()
                if self.summary.first_read_at is None:
                    self.summary.first_read_at = time.monotonic()
                    self.summary.first_read_cpu_s = time.process_time()
                    self.summary.first_read_cpu_wait_s = cpu_wait_s()
                self._process(messages)

    # -- consume → decode → map → batch ------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        plan = self.plan
        tracker = self._tracker
        to_decode: list[Message] = []
        to_decode_at: list[tuple[TopicPartitionKey, int]] = []
        per_topic: Counter[str] = Counter()
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    # Everything before the end is read: positions may pass control records
                    # (transactions) that are never delivered as messages.
                    key, end = coordinates(message)
                    if plan is not None:  # a bounded run never commits past its snapshot
                        end = min(end, self._end_snapshot.get(key, 0))
                    tracker.reached_end(key, end)
                elif self._repeats.allow(shape(error.str())):
                    log.warning(
                        "consume error", extra={"error": error.name(), "detail": error.str()}
                    )
                continue
            key, offset = coordinates(message)
            if plan is not None and self._past_end(key, offset):
                continue
            tracker.consumed(key, offset)
            per_topic[key[0]] += 1
            if plan is not None and not self._in_plan(plan, key, message):
                tracker.settle(key, offset)
                self.summary.filtered += 1
                continue
            to_decode.append(message)
            to_decode_at.append((key, offset))
        for topic, count in per_topic.items():
            self.summary.read += count
            self.metrics.events_consumed.labels(topic).inc(count)
        if plan is not None and plan.max_events_per_second:
            now = time.monotonic()
            self._rate_next_at = max(self._rate_next_at, now) + (
                len(to_decode) / plan.max_events_per_second
            )
        if to_decode:
            self._decode_and_map(to_decode, to_decode_at)

    def _past_end(self, key: TopicPartitionKey, offset: int) -> bool:
        end = self._end_snapshot.get(key)
        if end is not None and offset >= end:
            # A record at or past the end proves everything before it was read (offsets in
            # between may be transaction markers that never arrive as records).
            self._tracker.reached_end(key, end)
            if key not in self._finished_partitions:
                self._finished_partitions.add(key)
                assert self._consumer is not None
                self._consumer.pause([TopicPartition(key[0], key[1])])
            return True
        return False

    @staticmethod
    def _in_plan(plan: Plan, key: TopicPartitionKey, message: Message) -> bool:
        if plan.partitions is not None and key not in plan.partitions:
            return False
        if plan.accept is not None and not plan.accept(message):
            return False
        if plan.from_time_ms is None and plan.to_time_ms is None:
            return True
        _, timestamp = message.timestamp()
        if plan.from_time_ms is not None and timestamp < plan.from_time_ms:
            return False
        return plan.to_time_ms is None or timestamp < plan.to_time_ms

    def _decode_and_map(
        self, messages: list[Message], at: list[tuple[TopicPartitionKey, int]] | None = None
    ) -> None:
        unwrap = self.plan.unwrap if self.plan is not None else None
        origins: list[Origin | None] = []
        if unwrap is None:
            values = [message.value() for message in messages]
            origins = [None] * len(messages)
        else:
            values = []
            for message in messages:
                value, found = unwrap(message)
                values.append(value)
                origins.append(found)
        try:
            decoded = self._decode(values)
        except RegistryRejected as exc:
            # Bad registry credentials or a refused schema: no retry can fix it.
            # Printed on stderr too: the registry's text may carry its URL's user info.
            self._fatal_error = f"the schema registry refused the request: {redact_log(str(exc))}"
            self._stalled.extend(messages)
            return
        except RegistryUnavailable as exc:
            log.warning("schema registry unavailable; pausing", extra={"error": str(exc)})
            self._stalled.extend(messages)  # coordinates are recomputed on retry
            self._stalled_attempt += 1
            self._stalled_retry_at = self._clock() + min(30.0, 0.5 * 2**self._stalled_attempt)
            return
        self._stalled_attempt = 0
        now_ms = int(self._clock() * 1000)
        now = self._clock()
        # The hot loop: names bound locally, counters summed once per batch.
        compiled = self._compiled
        dumps = self._dumps
        add = self._batcher.add
        pixel_of = self._router.pixel_of
        only_pixel = self._router.only_pixel
        read_values = self._read_values
        identities = self._identities
        dry_run = self.plan is not None and self.plan.dry_run
        inspector = self.inspector
        mapped_per_pixel: Counter[str] = Counter()
        pending_bytes = 0
        if at is None:
            at = [coordinates(message) for message in messages]
        for message, event, origin, (key, offset) in zip(
            messages, decoded, origins, at, strict=True
        ):
            if isinstance(event, DecodeFailure):
                self._dead_letter(message, origin, "undecodable", event.message)
                if inspector is not None:
                    inspector.record(
                        "dead_lettered",
                        pixel=None,
                        event_id=None,
                        event_type=None,
                        reason="undecodable",
                        message=event.message,
                    )
                continue
            event_values = event if event.__class__ is tuple else read_values(event)
            outcome = map_values(event_values, compiled, now_ms)
            if isinstance(outcome, Mapped):
                pixel = only_pixel or pixel_of(event_values)
                if pixel is None:
                    self._skip(key, offset, "unrouted")
                    if inspector is not None:
                        self._inspect_unsent("unrouted", event_values, outcome.event["type"])
                    continue
                mapped = outcome.event
                mapped_per_pixel[pixel] += 1
                if dry_run:
                    self._dry_run_settle(mapped, key, offset)
                    continue
                payload = dumps(mapped)
                pending_bytes += len(payload)
                # Events share a handful of identity shapes: one frozenset each, not a set per
                # event in flight.
                user = mapped.get("user")
                shape = (tuple(user) if user else (), "oppref" in mapped)
                identity = identities.get(shape)
                if identity is None:
                    identity = identities[shape] = _identity_fields(shape)
                full = add(
                    pixel,
                    Pending(
                        payload, key, offset, mapped["timestamp_ms"], message, origin, identity
                    ),
                    now,
                )
                if full:
                    self._pending_bytes += pending_bytes
                    pending_bytes = 0
                    self._submit(full)
            elif isinstance(outcome, Skipped):
                self._skip(key, offset, outcome.reason)
                if inspector is not None:
                    self._inspect_unsent(outcome.reason, event_values)
            elif (
                outcome.code == "timestamp_out_of_window"
                and self.plan is not None
                and self.plan.expired == "skip"
            ):
                self._skip(key, offset, "timestamp_out_of_window")
            else:
                self._dead_letter(message, origin, outcome.code, outcome.message, outcome.field)
                if inspector is not None:
                    self._inspect_unsent(outcome.code, event_values, failed=outcome)
        self._pending_bytes += pending_bytes
        for pixel, count in mapped_per_pixel.items():
            self._outcomes_seen += count
            self.summary.mapped += count
            self.metrics.events_mapped.labels(pixel).inc(count)

    def _inspect_unsent(
        self,
        reason: str,
        values: tuple[Any, ...],
        event_type: str | None = None,
        failed: Failed | None = None,
    ) -> None:
        """An event settled before it could be sent: skipped, or dead-lettered by the mapping."""
        assert self.inspector is not None
        compiled = self._compiled
        if event_type is None:
            name = values[compiled.event_name]
            event_type = compiled.event_types.get(name) if isinstance(name, str) else None
        pixel = self._router.only_pixel or self._router.pixel_of(values)
        self.inspector.record(
            "skipped" if failed is None else "dead_lettered",
            pixel=pixel,
            event_id=values[compiled.id],
            event_type=event_type,
            reason=reason,
            field=None if failed is None else failed.field or None,
            message=None if failed is None else failed.message,
        )

    def _dry_run_settle(self, mapped: dict[str, Any], key: TopicPartitionKey, offset: int) -> None:
        assert self.plan is not None
        if self.plan.on_dry_run_event is not None:
            self.plan.on_dry_run_event(mapped)
        self._tracker.settle(key, offset)

    def _retry_stalled(self, now: float) -> None:
        if self._stalled and now >= self._stalled_retry_at:
            stalled, self._stalled = self._stalled, []
            self._decode_and_map(stalled)

    # -- settle ---------------------------------------------------------------------------------

    def _skip(self, key: TopicPartitionKey, offset: int, reason: str) -> None:
        self.summary.skipped[reason] += 1
        self.metrics.events_skipped.labels(reason).inc()
        self._tracker.settle(key, offset)
        self._outcomes_seen += 1

    def _dead_letter(
        self,
        message: Message,
        origin: Origin | None,
        reason: str,
        text: str,
        field_path: str | None = None,
        status: int | None = None,
        pixel: str | None = None,
        counted: bool = False,
    ) -> None:
        key, offset = coordinates(message)
        self._note_dead_letter(counted=counted)
        if self.plan is not None and self.plan.dry_run:
            self.summary.dead_lettered[reason] += 1
            self._tracker.settle(key, offset)
            return
        if origin is None:
            origin = Origin.of(message)
        else:
            origin = Origin(
                origin.topic,
                origin.partition,
                origin.offset,
                origin.timestamp_ms,
                origin.key,
                origin.value,
                origin.attempts + 1,
            )
        self._in_flight_by_partition[key] += 1
        letter = DeadLetter(origin, reason, text, field_path, status, pixel)
        log.info(
            "dead-lettering event",
            extra={
                "reason": reason,
                "field": field_path,
                "topic": key[0],
                "partition": key[1],
                "offset": offset,
            },
        )

        def acked() -> None:
            self._in_flight_by_partition[key] -= 1
            self.summary.dead_lettered[reason] += 1
            self.metrics.events_dead_lettered.labels(reason).inc()
            self._tracker.settle(key, offset)

        self._dlq.write(letter, acked)

    def _note_dead_letter(self, counted: bool) -> None:
        """The DLQ breaker: more than `max_ratio` of the last `window` outcomes dead-lettered.
        `counted`: the event was already counted once (mapped, then refused at send)."""
        if not counted:
            self._outcomes_seen += 1
        seen = self._outcomes_seen
        window = self.config.dlq.window
        dead = self._dead_seqs
        dead.append(seen)
        while dead[0] <= seen - window:
            dead.popleft()
        if len(dead) > self.config.dlq.max_ratio * window and not self._breaker_tripped:
            self._breaker_tripped = True
            log.error(
                "DLQ breaker: too many events dead-lettered; stopping",
                extra={
                    "dead_lettered": len(dead),
                    "window": window,
                    "max_ratio": self.config.dlq.max_ratio,
                },
            )

    def _submit(self, batches: Iterable[Batch]) -> None:
        for full in batches:
            batch = self._presend_check(full)
            if not batch.items:
                continue
            assert self._delivery is not None
            self._in_flight[id(batch)] = batch
            self._in_flight_by_partition.update(map(_source, batch.items))
            self.summary.batches += 1
            self._delivery.submit(batch)

    def _presend_check(self, batch: Batch) -> Batch:
        """Just before sending: the API's time window (one expired event would sink the whole
        batch), and with `delivery.validate_before_send` every rule of `capi_rules`."""
        now_ms = int(self._clock() * 1000)
        in_window = capi_rules.in_window
        validate = self.config.delivery.validate_before_send
        if not validate and all(in_window(item.timestamp_ms, now_ms) for item in batch.items):
            return batch
        kept = []
        for item in batch.items:
            violation = None
            if not in_window(item.timestamp_ms, now_ms):
                violation = capi_rules.Violation(
                    "timestamp_ms",
                    "left the API's 7-day window while waiting to be sent",
                    "timestamp_out_of_window",
                )
            elif validate:
                violation = capi_rules.validate_event(item.event, now_ms)
            if violation is None:
                kept.append(item)
                continue
            self._pending_bytes -= len(item.payload)
            reason = dlq_reason(violation)
            skip = reason == "timestamp_out_of_window" and self.plan and self.plan.expired == "skip"
            if self.inspector is not None:
                self.inspector.sent(
                    "skipped" if skip else "dead_lettered",
                    batch.pixel_id,
                    [item],
                    reason,
                    violation.field,
                    message=describe(violation),
                )
            if skip:
                self._skip(item.source, item.offset, reason)
                continue
            self._dead_letter(
                item.record,
                item.origin,
                reason,
                describe(violation),
                violation.field,
                pixel=batch.pixel_id,
                counted=True,
            )
        return batch.with_items(kept)

    def _settle_results(self, block_s: float) -> None:
        if self._delivery is None:
            return
        results = self._delivery.results
        try:
            result = results.get(timeout=block_s) if block_s > 0 else results.get_nowait()
        except queue.Empty:
            return
        while True:
            self._settle_result(result)
            try:
                result = results.get_nowait()
            except queue.Empty:
                return

    def _settle_result(self, result: BatchResult) -> None:
        batch = result.batch
        self._in_flight.pop(id(batch), None)
        self.summary.requests += result.requests
        sources = Counter(map(_source, batch.items))  # counted in C, not per item in Python
        in_flight = self._in_flight_by_partition
        in_flight.subtract(sources)
        for key in sources:
            if key not in self._assigned:  # revoked meanwhile: its count was forgotten
                in_flight.pop(key, None)
        self._pending_bytes -= sum(map(len, map(_payload, batch.items)))
        if result.fatal is not None:
            if self._fatal is None:
                self._fatal = result.fatal
                log.error(
                    "CAPI refused the credentials or the pixel; stopping",
                    extra={"pixel": result.fatal.pixel_id, "status": result.fatal.status},
                )
            return  # nothing of this batch is settled: not delivered, not dead-lettered
        pixel = batch.pixel_id
        if self.inspector is not None:
            self._inspect_result(result)
        tracker = self._tracker
        if result.delivered:
            self.summary.delivered += len(result.delivered)
            self.metrics.events_delivered.labels(pixel).inc(len(result.delivered))
            settle = tracker.settle
            for item in result.delivered:
                settle(item.source, item.offset)
            coverage = Counter(chain.from_iterable(map(_identity, result.delivered)))  # in C
            for name, count in coverage.items():
                self.metrics.identity_delivered.labels(pixel, name).inc(count)
        for rejection in result.rejected:
            item = rejection.item
            self._dead_letter(
                item.record,
                item.origin,
                rejection.reason,
                rejection.message,
                rejection.field,
                rejection.status,
                pixel,
                counted=True,
            )

    def _inspect_result(self, result: BatchResult) -> None:
        assert self.inspector is not None
        pixel = result.batch.pixel_id
        self.inspector.delivered(pixel, result.delivered)
        for rejection in result.rejected:
            by_api = rejection.reason == "rejected_by_api"
            self.inspector.sent(
                "rejected_by_api" if by_api else "dead_lettered",
                pixel,
                [rejection.item],
                rejection.reason,
                rejection.field or api_error_field(rejection.message),
                rejection.status,
                rejection.message,
            )

    # -- backpressure, commits, progress ------------------------------------------------------

    def _apply_backpressure(self, now: float) -> None:
        consumer = self._consumer
        assert consumer is not None
        delivery = self._delivery
        settings = self.config.delivery
        pending_events = len(self._batcher) + sum(len(b.items) for b in self._in_flight.values())
        should_pause = (
            pending_events >= settings.max_pending_events
            or self._pending_bytes >= settings.max_pending_bytes
            or (delivery is not None and delivery.retrying)
            or self._dlq.failing
            or bool(self._stalled)
        )
        if should_pause and not self._paused:
            consumer.pause(self._assignment())
            self._paused = True
            self.metrics.paused_partitions.set(len(self._assigned))
        elif not should_pause and self._paused:
            active = [
                tp
                for tp in self._assignment()
                if (tp.topic, tp.partition) not in self._finished_partitions
            ]
            consumer.resume(active)
            self._paused = False
            self.metrics.paused_partitions.set(0)

    def _assignment(self) -> list[TopicPartition]:
        return [TopicPartition(topic, partition) for topic, partition in sorted(self._assigned)]

    def _commit(self, asynchronous: bool, keys: list[TopicPartitionKey] | None = None) -> None:
        consumer = self._consumer
        assert consumer is not None
        positions = self._tracker.committable(keys)
        if not positions:
            return
        if self.plan is not None and self.plan.dry_run:
            # A dry run commits nothing: a later real run would take these offsets as done.
            self._tracker.mark_committed(positions)
            return
        metadata = self.plan.commit_metadata if self.plan is not None else None
        offsets = [
            TopicPartition(topic, partition, position, metadata)
            if metadata
            else TopicPartition(topic, partition, position)
            for (topic, partition), position in positions.items()
        ]
        try:
            if asynchronous:
                # Marked committed only when the broker confirms (`_on_commit`).
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._on_commit(None, consumer.commit(offsets=offsets, asynchronous=False))
        except KafkaException as exc:
            self.metrics.commits.labels("error").inc()
            log.warning("commit failed", extra={"error": str(exc)})

    def _update_gauges(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        pending = [item for b in self._in_flight.values() for item in b.items]
        self.metrics.pending_events.set(len(pending) + len(self._batcher))
        self.metrics.pending_bytes.set(self._pending_bytes)
        if pending:
            oldest = min(item.timestamp_ms for item in pending)
            self.metrics.oldest_pending_age.set(max(0.0, self._clock() - oldest / 1000))
        else:
            self.metrics.oldest_pending_age.set(0)
        for topic, partition in self._assigned:
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            position = self._tracker.position((topic, partition))
            if high >= 0 and position is not None:
                self.metrics.lag.labels(topic, str(partition)).set(max(0, high - position))

    def _snapshot_end_offsets(self) -> dict[TopicPartitionKey, int]:
        consumer = self._consumer
        assert consumer is not None
        if self.plan is not None and self.plan.end_offsets:
            return dict(self.plan.end_offsets)
        metadata = await_metadata(
            consumer,
            str(self.config.kafka.bootstrap_servers),
            self.config.kafka.unreachable_timeout_s,
            self._kafka_cause,
        )
        self._note_reachable()
        missing = missing_topics(metadata, self._topics)
        if missing:
            raise MissingTopics(missing)
        snapshot: dict[TopicPartitionKey, int] = {}
        for topic in self._topics:
            for partition in metadata.topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                snapshot[(topic, partition)] = high
        return snapshot

    def _check_topics(self) -> None:
        """Which subscribed topics exist (metadata for all topics: naming one could create it
        on brokers that auto-create). Each missing one is named in an error line a minute."""
        consumer = self._consumer
        assert consumer is not None
        try:
            metadata = consumer.list_topics(timeout=1.0)
        except KafkaException:
            return  # the error callback tells why
        self._note_reachable()
        missing = missing_topics(metadata, self._topics)
        for topic in missing:
            if self._repeats.allow(("missing topic", topic)):
                log.error("subscribed topic does not exist", extra={"topic": topic})
        self._missing_topics = missing

    def _note_reachable(self) -> None:
        if not self.kafka_reachable and self._kafka_was_down:
            log.info("Kafka reachable again")
        self._kafka_was_down = False
        self.kafka_reachable = True

    def _note_join_wait(self) -> None:
        """Say once what a start waits for when the group is slow to assign."""
        started = self._subscribed_at
        if self._join_wait_logged or started is None or not self.kafka_reachable:
            return
        if self.heartbeat - started < 5.0:
            return
        self._join_wait_logged = True
        session = self._consumer_setting("session.timeout.ms", 45000)
        log.info(
            "still waiting for the group's partition assignment: after an unclean stop "
            "(kill -9, a lost pod) the broker first waits for the old member's session to "
            "expire (session.timeout.ms)",
            extra={"group": self._group_id, "session_timeout_ms": session},
        )

    def _consumer_setting(self, name: str, default: Any) -> Any:
        return kafka_settings(self.config).get(name, default)

    def _caught_up(self) -> bool:
        """Every partition of the snapshot is settled and committed up to its end offset."""
        if self._batcher or self._in_flight or self._dlq.in_flight or self._stalled:
            return False
        # Checked as soon as everything is settled, then not more often than every 0.25 s
        # (each check commits synchronously).
        now = time.monotonic()
        if now - self._last_caught_up_check < 0.25:
            return False
        self._last_caught_up_check = now
        self._commit(asynchronous=False)
        tracker = self._tracker
        wanted = [
            (key, end)
            for key, end in self._end_snapshot.items()
            if end > 0 and (tracker.committed_position(key) or -1) < end
        ]
        if not wanted:
            return True
        if any(key in self._assigned and tracker.position(key) is not None for key, _ in wanted):
            return False  # our own partitions are on their way: no need to ask the broker
        # Partitions of other members, or with nothing left to read (retention): ask the broker,
        # not more often than every 2 s.
        if not self._group_joined or now - self._last_broker_check < 2.0:
            return False  # before the first assignment the broker answers slowly
        self._last_broker_check = now
        consumer = self._consumer
        assert consumer is not None
        try:
            committed = consumer.committed([TopicPartition(*k) for k, _ in wanted], timeout=10)
            positions = {(tp.topic, tp.partition): tp.offset for tp in committed}
            for key, end in wanted:
                if positions.get(key, -1) >= end:
                    continue
                low, _ = consumer.get_watermark_offsets(
                    TopicPartition(*key), cached=False, timeout=10
                )
                if low >= end:  # retention dropped everything we were asked to reach
                    continue
                return False
        except KafkaException as exc:  # a slow broker: ask again later
            log.warning("caught-up check failed", extra={"error": str(exc)})
            return False
        return True

    # -- rebalance ------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._group_joined = True
        self._note_reachable()
        for tp in partitions:
            self._tracker.assign((tp.topic, tp.partition))
            self._assigned.add((tp.topic, tp.partition))
        if self.plan is not None and self.plan.start_offsets:
            # A failure here raises out of consume(): the run stops and reports it (exit 1)
            # rather than start a bounded run from a guessed position.
            committed = consumer.committed(partitions, timeout=30)
            for tp, done in zip(partitions, committed, strict=True):
                start = self.plan.start_offsets.get((tp.topic, tp.partition))
                if done.offset < 0 and start is not None:
                    tp.offset = start
            consumer.assign(partitions)
        self._paused = False  # new assignments start fetching; backpressure re-applies
        log.info("partitions assigned", extra={"partitions": _names(partitions)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        if not self._closing:
            dropped = self._drop_unsent(keys)
            deadline = time.monotonic() + self.config.delivery.revoke_grace_s
            while time.monotonic() < deadline and any(
                self._in_flight_by_partition[key] > 0 for key in keys
            ):
                self._settle_results(block_s=0.05)
                self._dlq.poll()
            log.info(
                "partitions revoked",
                extra={"partitions": _names(partitions), "unsent_dropped": len(dropped)},
            )
        self._commit(asynchronous=False, keys=list(keys))
        self._forget(keys)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        self._drop_unsent(keys)
        self._forget(keys)
        log.warning("partitions lost; nothing committed", extra={"partitions": _names(partitions)})

    def _drop_unsent(self, keys: set[TopicPartitionKey]) -> list[Pending]:
        """Unsent work of partitions this member no longer owns: their new owner reads it
        again from the committed offset."""
        dropped = self._batcher.remove_partitions(keys)
        self._pending_bytes -= sum(map(len, map(_payload, dropped)))
        self._stalled = [m for m in self._stalled if coordinates(m)[0] not in keys]
        return dropped

    def _forget(self, keys: set[TopicPartitionKey]) -> None:
        for key in keys:
            self._tracker.forget(key)
            self._assigned.discard(key)
            self._in_flight_by_partition.pop(key, None)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The broker's answer to a commit: only confirmed positions count as committed."""
        confirmed = {
            (tp.topic, tp.partition): tp.offset
            for tp in partitions
            if tp.error is None and tp.offset >= 0
        }
        self._tracker.mark_committed(confirmed)
        for (topic, partition), position in confirmed.items():
            self.metrics.committed_offset.labels(topic, str(partition)).set(position)
        failed = len(partitions) - len(confirmed)
        if error is not None or failed:
            self.metrics.commits.labels("error").inc()
            log.warning(
                "commit not confirmed; it is retried",
                extra={"error": error.name() if error else None, "partitions": failed},
            )
        elif confirmed:
            self.metrics.commits.labels("ok").inc()

    def _on_kafka_error(self, error: KafkaError) -> None:
        self._kafka_cause(error)
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.kafka_reachable = False
            self._kafka_was_down = True
        if self._repeats.allow(shape(error.str())):
            log.warning("kafka client error", extra={"error": error.name(), "detail": error.str()})

    # -- shutdown ------------------------------------------------------------------------------

    def _shutdown(self, reason: ExitReason) -> None:
        """Flush within the grace period, commit what is settled, leave the group."""
        consumer = self._consumer
        assert consumer is not None
        if reason not in ("fatal", "error"):  # nothing new is sent when something is broken
            self._submit(self._batcher.drain())
            deadline = time.monotonic() + self.config.delivery.shutdown_grace_s
            while self._in_flight and time.monotonic() < deadline:
                self._settle_results(block_s=0.05)
                self._dlq.poll()
                if self._fatal is not None:
                    break
            self._dlq.flush(max(0.0, deadline - time.monotonic()))
        if self._in_flight and self._delivery is not None:
            self._delivery.cancel_all()
        self._commit(asynchronous=False)
        self.summary.last_commit_at = time.monotonic()
        self.summary.last_commit_cpu_s = time.process_time()
        self.summary.last_commit_cpu_wait_s = cpu_wait_s()
        self._update_gauges()
        self._closing = True
        consumer.close()


_source = operator.attrgetter("source")
_identity = operator.attrgetter("identity")
# Identity fields of a mapped event: in its `user`, and `oppref` at the top.
_USER_IDENTITY = frozenset(IDENTITY_FIELDS) - {"oppref"}
_payload = operator.attrgetter("payload")


def _identity_fields(shape: tuple[tuple[str, ...], bool]) -> frozenset[str]:
    """The identity fields of a mapped event: its `user` keys that are identities, and oppref."""
    user_keys, has_oppref = shape
    return _USER_IDENTITY.intersection(user_keys) | ({"oppref"} if has_oppref else set())


def cpu_wait_s() -> float | None:
    """Seconds this thread has been runnable but waiting for a core (Linux schedstat), so
    that a busy machine is not mistaken for an idle consumer; None where not available."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as file:
            return int(file.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def coordinates(message: Message) -> tuple[TopicPartitionKey, int]:
    """(topic, partition), offset of a consumed record (never None for a record)."""
    return (cast(str, message.topic()), cast(int, message.partition())), cast(int, message.offset())


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]
