"""The live loop: source → decode → map → route/batch → deliver → settle (commit or DLQ).

Threads: this (main) thread owns the source (consume, pause/resume, commits, rebalance
callbacks), decoding, mapping, batching, the DLQ producer and the offset tracker; the delivery
thread owns HTTP. Batches go over as whole units and results come back on a queue, so nothing in
the hot path awaits per event, and a revoke can wait for in-flight batches without stopping HTTP.

Every consumed offset settles exactly once (settle.py). Only the highest contiguous settled
offset is committed. The source, the clock, delivery and the DLQ are parameters: tests drive
the loop with in-memory ones (tests/consumer/live/).
"""

from __future__ import annotations

import contextlib
import logging
import operator
import queue
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any, cast

import orjson
from confluent_kafka import KafkaError

from consumer.avro.decoding import Decoder
from consumer.avro.framing import DecodeFailure
from consumer.codes import ExitReason, mapping_dlq_reason
from consumer.config import AppConfig
from consumer.errors import (
    FatalDeliveryError,
    FatalError,
    RegistryRefused,
    RegistryRejected,
    RegistryUnavailable,
    SourceError,
)
from consumer.live.batching import Batch, Batcher, Pending
from consumer.live.clock import SYSTEM_CLOCK, Clock
from consumer.live.delivery import Delivery, DeliveryThread, Sender, describe, dlq_reason
from consumer.live.dlq import DeadLetterSink, DeadLetterWriter, Origin
from consumer.live.gate import LIVE, Gate, Pacer
from consumer.live.kafka_clients import producer_settings
from consumer.live.offsets import OffsetTracker, Span, TopicPartitionKey
from consumer.live.reachability import ErrorCause, MissingTopics, Throttle, missing_topics, shape
from consumer.live.routing import Router, api_keys
from consumer.live.settle import DlqBreaker, Settler, Summary
from consumer.live.source import (
    PARTITION_EOF,
    ConfluentSource,
    KafkaSource,
    Record,
    coordinates,
    live_consumer_settings,
)
from consumer.observability.inspector import Inspector
from consumer.observability.metrics import IDENTITY_FIELDS, Metrics
from consumer.redaction import redact_log
from transforms import Failed, Mapped, Skipped, capi_rules, map_values
from transforms.outcomes import OPPREF_BIT, USER_FIELDS
from transforms.paths import PathReader

log = logging.getLogger("consumer.pipeline")

# How often the loop asks which subscribed topics exist (a metadata request).
_TOPIC_CHECK_INTERVAL_S = 5.0

# When two fatal conditions meet in one turn of the loop, the first of these wins.
_SEVERITY: dict[ExitReason, int] = {"fatal": 0, "error": 1, "breaker": 2}


class Pipeline:
    def __init__(
        self,
        config: AppConfig,
        *,
        group_id: str | None = None,
        topics: list[str] | None = None,
        gate: Gate = LIVE,
        metrics: Metrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
        source: KafkaSource | None = None,
        delivery: Delivery | None = None,
        dead_letters: DeadLetterSink | None = None,
    ) -> None:
        self.config = config
        self.gate = gate
        self.metrics = metrics or Metrics()
        self._clock = clock
        self.summary = Summary(started_at=clock.monotonic(), monotonic=clock.monotonic)
        self._topics = topics or list(config.kafka.topics)
        self._group_id = group_id or config.kafka.group_id
        self._source = source or ConfluentSource(live_consumer_settings(config, self._group_id))
        self._compiled = config.compile()
        self._decoder = Decoder(config.schema_settings)
        paths = list(self._compiled.event_reader.index)
        self._router = Router(config.capi.routes, config.capi.pixel_id, paths)
        # Events come decoded as their values at `paths` (`map_values`): read from the bytes
        # by the compiled reader where it can, else read from the whole decoded record.
        self._read_values = PathReader(paths).read
        self._identities: dict[int, frozenset[str]] = {}  # by `Mapped.shape`
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
        # A broker answered, and librdkafka has not said "all brokers down" since (set by the
        # error callback, which the DLQ producer shares).
        self.kafka_reachable = False
        self._delivery: Delivery | None = None
        if not gate.dry_run:
            self._delivery = delivery or DeliveryThread(
                Sender(
                    config.capi.base_url,
                    api_keys(config),
                    config.delivery,
                    self.metrics,
                    self._integration_source,
                    config.capi.validate_only,
                    clock.time,
                )
            )
        if dead_letters is None:
            dlq_settings = producer_settings(config.kafka_client_settings())
            dlq_settings.update(config.dlq.producer_settings)
            dead_letters = DeadLetterWriter(
                dlq_settings, config.dlq.topic, clock.time, error_cb=self.dlq_client_error
            )
        self._dlq = dead_letters
        # Off by default; when off it costs one attribute check per settled batch.
        self.inspector = (
            Inspector(config.inspector.max_events, clock.time) if config.inspector.enabled else None
        )
        self._settler = Settler(
            self._tracker,
            self.summary,
            self.metrics,
            dead_letters,
            DlqBreaker(config.dlq.window, config.dlq.max_ratio),
            gate.dry_run,
            self.inspector,
        )
        self._pacer = Pacer(gate.max_events_per_second)
        self._assigned: set[TopicPartitionKey] = set()
        self._paused = False
        self._stop_requested = False
        self._closing = False
        self._fatal: FatalError | None = None
        self._in_flight: dict[int, Batch] = {}
        self._pending_bytes = 0
        self.stalled: list[Record] = []  # consumed, not decodable yet (registry down)
        self._stalled_at: list[Span] = []  # their spans
        self._stalled_retry_at = 0.0
        self._stalled_attempt = 0
        self._finished_partitions: set[TopicPartitionKey] = set()
        self._end_snapshot: dict[TopicPartitionKey, int] = {}
        self._last_commit = 0.0
        self._last_caught_up_check = 0.0
        self._last_broker_check = 0.0
        self._group_joined = False  # the first assignment (maybe empty: a standby) arrived
        self._subscribed_at: float | None = None
        self._join_wait_logged = False
        self._missing_topics: list[str] | None = None  # None: not checked yet
        self._topics_checked_at = -_TOPIC_CHECK_INTERVAL_S
        self.heartbeat = clock.monotonic()
        self.on_progress: Callable[[Pipeline], None] | None = None
        self.ran = False  # it subscribed: its summary means something

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop_requested = True

    @property
    def failure(self) -> FatalError | None:
        """What stopped the run (exit reasons `fatal`, `error`, `breaker`), else None."""
        return self._fatal

    @property
    def credentials_rejected(self) -> bool:
        fatal = self._fatal
        return isinstance(fatal, FatalDeliveryError) and fatal.status in (401, 403, 404)

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
        source = self._source
        source.open(self)
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
            if until_caught_up or self.gate.bounded:
                try:
                    self._end_snapshot = self._snapshot_end_offsets()
                except BaseException:
                    self._closing = True
                    source.close()
                    raise
            source.subscribe(self._topics, self.gate.start_offsets)
            self._subscribed_at = self._clock.monotonic()
            self.ran = True
            log.info(
                "joining the consumer group; waiting for its partition assignment",
                extra={"group": self._group_id},
            )
            try:
                reason = self._loop(until_caught_up or self.gate.bounded)
            except Exception:
                # Commit what is settled and leave the group cleanly, then report the error.
                self.summary.finished_at = self._clock.monotonic()
                with contextlib.suppress(Exception):
                    self._shutdown("error")
                raise
            self.summary.finished_at = self._clock.monotonic()
            self._shutdown(reason)
            return reason
        finally:
            if self.summary.finished_at is None:
                self.summary.finished_at = self._clock.monotonic()
            if self._delivery is not None:
                self._delivery.stop()
            self._dlq.close()

    def _fail(self, error: FatalError) -> None:
        """Keep the most severe condition met (the first of equals)."""
        if self._fatal is None or (
            _SEVERITY[error.exit_reason] < _SEVERITY[self._fatal.exit_reason]
        ):
            self._fatal = error

    def _loop(self, until_caught_up: bool) -> ExitReason:
        source = self._source
        clock = self._clock
        batch_size = self.gate.consume_batch_size(self.config.kafka.consume_batch_size)
        while True:
            self.heartbeat = clock.monotonic()
            self._settle_results(block_s=0)
            self._dlq.poll()
            if self._dlq.fatal is not None:
                self._fail(self._dlq.fatal)
            if self._settler.breaker.tripped is not None:
                self._fail(self._settler.breaker.tripped)
            if self._fatal is not None:
                if self._fatal.exit_reason == "error":
                    log.error(str(self._fatal))
                return self._fatal.exit_reason
            if self._stop_requested:
                return "stopped"
            if self.heartbeat - self._topics_checked_at >= _TOPIC_CHECK_INTERVAL_S:
                self._topics_checked_at = self.heartbeat
                self._check_topics()
            if not self._group_joined:
                self._note_join_wait()
            now = clock.time()
            self._submit(self._batcher.due(now))
            self._retry_stalled(now)
            if self.heartbeat - self._last_commit >= self.config.kafka.commit_interval_s:
                self._last_commit = self.heartbeat
                self._commit(asynchronous=True)
                self._update_gauges()
                if self.on_progress is not None:
                    self.on_progress(self)
            if until_caught_up and self._caught_up():
                return "caught_up"
            self._apply_backpressure()
            rate_wait = self._pacer.wait_s(clock.monotonic())
            if rate_wait > 0 and not self._paused:
                # --max-events-per-second: wait here rather than pause, which would cost a
                # fetch round trip per resume.
                self._settle_results(block_s=min(rate_wait, 0.05))
                continue
            if self._paused:
                # Keep calling consume (group membership, rebalances) while waiting on results;
                # whatever it still returns is processed, never dropped.
                records = source.consume(batch_size, 0)
                if not records:
                    self._settle_results(block_s=0.05)
                    continue
            else:
                records = source.consume(batch_size, 0.05 if not self._in_flight else 0.01)
            if records:
                self._note_reachable()
                if self.summary.first_read_at is None:
                    self.summary.first_read(clock.monotonic())
                self._process(records)
            elif self._end_snapshot and self._batcher and self._read_to_the_end():
                # Nothing left to read before the end: waiting out the linger would only delay
                # the last commit.
                self._submit(self._batcher.drain())

    # -- consume → decode → map → batch ------------------------------------------------------

    def _process(self, records: list[Record]) -> None:
        bounded = self.gate.bounded
        tracker = self._tracker
        to_decode: list[Record] = []
        # Where each run of records of one partition starts in `to_decode`: the bookkeeping
        # (spans, counts, metrics) is per run, not per record.
        starts: list[int] = []
        run_topic: str | None = None
        run_partition: int | None = None
        ends: list[tuple[TopicPartitionKey, int]] = []
        for record in records:
            error = record.error()
            if error is not None:
                if error.code() == PARTITION_EOF:
                    # Everything before the end is read: positions may pass control records
                    # (transactions) that are never delivered as messages.
                    key, end = coordinates(record)
                    if bounded:  # a bounded run never commits past its snapshot
                        end = min(end, self._end_snapshot.get(key, 0))
                    ends.append((key, end))  # once the records before it are tracked
                elif self._repeats.allow(shape(error.str())):
                    log.warning(
                        "consume error", extra={"error": error.name(), "detail": error.str()}
                    )
                continue
            partition = record.partition()
            topic = record.topic()
            if partition != run_partition or topic != run_topic:
                run_partition = partition
                run_topic = topic
                starts.append(len(to_decode))
            to_decode.append(record)
        starts.append(len(to_decode))
        decode: list[Record] = []
        at: list[Span] = []  # the span of each record to decode
        read: Counter[str] = Counter()  # records consumed per topic
        for index in range(len(starts) - 1):
            run = to_decode[starts[index] : starts[index + 1]]
            if not run:
                continue
            first = run[0]
            key = tracker.key(cast(str, first.topic()), cast(int, first.partition()))
            if bounded:
                read[key[0]] += self._bounded_run(key, run, decode, at)
                continue
            span = tracker.consumed_span(key, _offsets(run))
            read[key[0]] += len(run)
            decode += run
            at += [span] * len(run)
        for key, end in ends:
            tracker.reached_end(key, end)
        for topic, count in read.items():
            self.summary.read += count
            self.metrics.events_consumed.labels(topic).inc(count)
        self._pacer.took(len(decode), self._clock.monotonic())
        if decode:
            self._decode_and_map(decode, at)

    def _bounded_run(
        self, key: TopicPartitionKey, run: list[Record], decode: list[Record], at: list[Span]
    ) -> int:
        """A run of records of a bounded run (backfill, DLQ replay): those past its end are
        not processed; those it does not admit are settled as filtered. Returns how many it
        consumed (those before the end)."""
        gate = self.gate
        end = self._end_snapshot.get(key)
        kept = run
        if end is not None:
            kept = [record for record in run if cast(int, record.offset()) < end]
        if kept:
            span = self._tracker.consumed_span(key, _offsets(kept))
            for record in kept:
                if gate.admits(key, record):
                    decode.append(record)
                    at.append(span)
                else:
                    self._settler.filtered(span, cast(int, record.offset()))
        if len(kept) < len(run):  # once the records before it are tracked
            self._past_end(key, cast(int, run[len(kept)].offset()))
        return len(kept)

    def _past_end(self, key: TopicPartitionKey, offset: int) -> bool:
        end = self._end_snapshot.get(key)
        if end is not None and offset >= end:
            # A record at or past the end proves everything before it was read (offsets in
            # between may be transaction markers that never arrive as records).
            self._tracker.reached_end(key, end)
            if key not in self._finished_partitions:
                self._finished_partitions.add(key)
                self._source.pause([key])
            return True
        return False

    def _decode_and_map(self, records: list[Record], at: list[Span]) -> None:
        """`at`: the span of each record."""
        gate = self.gate
        unwrap = gate.unwrap
        origins: list[Origin | None] = []
        if unwrap is None:
            values = [record.value() for record in records]
            origins = [None] * len(records)
        else:
            values = []
            for record in records:
                value, found = unwrap(record)
                values.append(value)
                origins.append(found)
        try:
            decoded = self._decode(values)
        except RegistryRejected as exc:
            # Bad registry credentials or a refused schema: no retry can fix it.
            # Printed on stderr too: the registry's text may carry its URL's user info.
            self._fail(RegistryRefused(redact_log(str(exc))))
            self.stalled.extend(records)
            self._stalled_at.extend(at)
            return
        except RegistryUnavailable as exc:
            log.warning("schema registry unavailable; pausing", extra={"error": str(exc)})
            self.stalled.extend(records)
            self._stalled_at.extend(at)
            self._stalled_attempt += 1
            self._stalled_retry_at = self._clock.time() + min(30.0, 0.5 * 2**self._stalled_attempt)
            return
        self._stalled_attempt = 0
        now_ms = int(self._clock.time() * 1000)
        now = self._clock.time()
        # The hot loop: names bound locally, counts and batches made once per consume batch.
        settler = self._settler
        compiled = self._compiled
        dumps = self._dumps
        pending = Pending
        new = tuple.__new__  # Pending's fields without a Python call
        by_pixel: defaultdict[str, list[Pending]] = defaultdict(list)
        pixel_of = self._router.pixel_of
        only_pixel = self._router.only_pixel
        read_values = self._read_values
        identities = self._identities
        dry_run = gate.dry_run
        skip_expired = gate.expired == "skip"
        inspector = self.inspector
        dry_run_mapped: Counter[str] = Counter()
        for record, event, origin, span in zip(records, decoded, origins, at, strict=True):
            if isinstance(event, DecodeFailure):
                settler.dead_letter(record, span, origin, "undecodable", event.message)
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
                    settler.skipped(span, cast(int, record.offset()), "unrouted")
                    if inspector is not None:
                        self._inspect_unsent("unrouted", event_values, outcome.event["type"])
                    continue
                mapped = outcome.event
                if dry_run:
                    dry_run_mapped[pixel] += 1
                    if gate.on_dry_run_event is not None:
                        gate.on_dry_run_event(mapped)
                    self._tracker.settle_offset(span, cast(int, record.offset()))
                    continue
                # Events share a handful of identity shapes: one frozenset each, not a set per
                # event in flight.
                identity = identities.get(outcome.shape)
                if identity is None:
                    identity = identities[outcome.shape] = _identity_fields(outcome.shape)
                by_pixel[pixel].append(
                    new(
                        pending,
                        (dumps(mapped), span, mapped["timestamp_ms"], record, origin, identity),
                    )
                )
            elif isinstance(outcome, Skipped):
                settler.skipped(span, cast(int, record.offset()), outcome.reason)
                if inspector is not None:
                    self._inspect_unsent(outcome.reason, event_values)
            elif outcome.code == "timestamp_out_of_window" and skip_expired:
                settler.skipped(span, cast(int, record.offset()), "timestamp_out_of_window")
            else:
                settler.dead_letter(
                    record,
                    span,
                    origin,
                    mapping_dlq_reason(outcome.code),
                    outcome.message,
                    outcome.field,
                )
                if inspector is not None:
                    self._inspect_unsent(outcome.code, event_values, failed=outcome)
        if dry_run:
            settler.mapped(dry_run_mapped)
            return
        settler.mapped({pixel: len(items) for pixel, items in by_pixel.items()})
        extend = self._batcher.extend
        for pixel, items in by_pixel.items():
            self._pending_bytes += sum(map(len, map(_payload, items)))
            self._submit(extend(pixel, items, now))

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

    def _retry_stalled(self, now: float) -> None:
        if self.stalled and now >= self._stalled_retry_at:
            stalled, self.stalled = self.stalled, []
            at, self._stalled_at = self._stalled_at, []
            self._decode_and_map(stalled, at)

    # -- deliver ------------------------------------------------------------------------------

    def _submit(self, batches: Iterable[Batch]) -> None:
        for full in batches:
            batch = self._presend_check(full)
            if not batch.items:
                continue
            assert self._delivery is not None
            self._in_flight[id(batch)] = batch
            self._settler.sent(batch)
            self._delivery.submit(batch)

    def _presend_check(self, batch: Batch) -> Batch:
        """Just before sending: the API's time window (one expired event would sink the whole
        batch), and with `delivery.validate_before_send` every rule of `capi_rules`."""
        now_ms = int(self._clock.time() * 1000)
        in_window = capi_rules.in_window
        validate = self.config.delivery.validate_before_send
        if not validate:
            # The window is an interval: the oldest and newest events tell for all.
            timestamps = list(map(_timestamp, batch.items))
            if not timestamps:
                return batch
            batch.oldest_ms = min(timestamps)
            if in_window(batch.oldest_ms, now_ms) and in_window(max(timestamps), now_ms):
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
            skip = reason == "timestamp_out_of_window" and self.gate.expired == "skip"
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
                self._settler.skipped(item.span, item.offset, "timestamp_out_of_window")
                continue
            self._settler.dead_letter(
                item.record,
                item.span,
                item.origin,
                reason,
                describe(violation),
                violation.field,
                pixel=batch.pixel_id,
                counted=True,
            )
        checked = batch.with_items(kept)
        if kept:
            checked.oldest_ms = min(map(_timestamp, kept))
        return checked

    def _settle_results(self, block_s: float) -> None:
        if self._delivery is None:
            return
        results = self._delivery.results
        try:
            result = results.get(timeout=block_s) if block_s > 0 else results.get_nowait()
        except queue.Empty:
            return
        while True:
            self._in_flight.pop(id(result.batch), None)
            self._pending_bytes -= result.batch.payload_bytes
            fatal = self._settler.batch_result(result, self._assigned)
            if fatal is not None and not isinstance(self._fatal, FatalDeliveryError):
                self._fail(fatal)
                log.error(
                    "CAPI refused the credentials or the pixel; stopping",
                    extra={"pixel": fatal.pixel_id, "status": fatal.status},
                )
            try:
                result = results.get_nowait()
            except queue.Empty:
                return

    # -- backpressure, commits, progress ------------------------------------------------------

    def _apply_backpressure(self) -> None:
        delivery = self._delivery
        settings = self.config.delivery
        pending_events = len(self._batcher) + sum(len(b.items) for b in self._in_flight.values())
        # Paused at the limits, resumed only once half of them is settled: a pause drops the
        # partitions' prefetched records (librdkafka), so resuming at the first answer paused
        # again at the next batch and fetched the same records over and over.
        if self._paused:
            over_limits = (
                pending_events > settings.max_pending_events // 2
                or self._pending_bytes > settings.max_pending_bytes // 2
            )
        else:
            over_limits = (
                pending_events >= settings.max_pending_events
                or self._pending_bytes >= settings.max_pending_bytes
            )
        should_pause = (
            over_limits
            or (delivery is not None and delivery.retrying)
            or self._dlq.failing
            or bool(self.stalled)
        )
        if should_pause and not self._paused:
            self._source.pause(sorted(self._assigned))
            self._paused = True
            self.metrics.paused_partitions.set(len(self._assigned))
        elif not should_pause and self._paused:
            active = [key for key in sorted(self._assigned) if key not in self._finished_partitions]
            self._source.resume(active)
            self._paused = False
            self.metrics.paused_partitions.set(0)

    def _commit(self, asynchronous: bool, keys: list[TopicPartitionKey] | None = None) -> None:
        positions = self._tracker.committable(keys)
        if not positions:
            return
        if self.gate.dry_run:
            # A dry run commits nothing: a later real run would take these offsets as done.
            self._tracker.mark_committed(positions)
            return
        try:
            # Asynchronous: marked committed only when the broker confirms (`committed`).
            self._source.commit(positions, self.gate.commit_metadata, asynchronous)
        except SourceError as exc:
            self.metrics.commits.labels("error").inc()
            log.warning("commit failed", extra={"error": str(exc)})

    def _update_gauges(self) -> None:
        in_flight = self._in_flight.values()
        self.metrics.pending_events.set(sum(len(b.items) for b in in_flight) + len(self._batcher))
        self.metrics.pending_bytes.set(self._pending_bytes)
        if in_flight:
            oldest = min(batch.oldest_ms for batch in in_flight)
            self.metrics.oldest_pending_age.set(max(0.0, self._clock.time() - oldest / 1000))
        else:
            self.metrics.oldest_pending_age.set(0)
        for key in self._assigned:
            try:
                _, high = self._source.watermarks(key, cached=True)
            except SourceError:
                continue
            position = self._tracker.position(key)
            if high >= 0 and position is not None:
                self.metrics.lag.labels(key[0], str(key[1])).set(max(0, high - position))

    def _snapshot_end_offsets(self) -> dict[TopicPartitionKey, int]:
        if self.gate.end_offsets:
            return dict(self.gate.end_offsets)
        known = self._source.await_metadata(
            self.config.kafka.unreachable_timeout_s, self._kafka_cause
        )
        self._note_reachable()
        missing = missing_topics(known, self._topics)
        if missing:
            raise MissingTopics(missing)
        snapshot: dict[TopicPartitionKey, int] = {}
        for topic in self._topics:
            for partition in known[topic]:
                _, high = self._source.watermarks((topic, partition), timeout_s=10)
                snapshot[(topic, partition)] = high
        return snapshot

    def _check_topics(self) -> None:
        """Which subscribed topics exist (metadata for all topics: naming one could create it
        on brokers that auto-create). Each missing one is named in an error line a minute."""
        try:
            known = self._source.metadata(timeout_s=1.0)
        except SourceError:
            return  # the error callback tells why
        self._note_reachable()
        missing = [topic for topic in dict.fromkeys(self._topics) if topic not in known]
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
        session = self.config.kafka_client_settings().get("session.timeout.ms", 45000)
        log.info(
            "still waiting for the group's partition assignment: after an unclean stop "
            "(kill -9, a lost pod) the broker first waits for the old member's session to "
            "expire (session.timeout.ms)",
            extra={"group": self._group_id, "session_timeout_ms": session},
        )

    def _read_to_the_end(self) -> bool:
        """Every assigned partition of the end snapshot was read up to its end."""
        tracker = self._tracker
        for key, end in self._end_snapshot.items():
            if end > 0 and key in self._assigned and (tracker.end_seen(key) or 0) < end:
                return False
        return True

    def _caught_up(self) -> bool:
        """Every partition of the snapshot is settled and committed up to its end offset."""
        if self._batcher or self._in_flight or self._dlq.in_flight or self.stalled:
            return False
        # Checked as soon as everything is settled, then not more often than every 0.25 s
        # (each check commits synchronously).
        now = self._clock.monotonic()
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
        try:
            positions = self._source.committed([key for key, _ in wanted], timeout_s=10)
            for key, end in wanted:
                if positions.get(key, -1) >= end:
                    continue
                low, _ = self._source.watermarks(key, cached=False, timeout_s=10)
                if low >= end:  # retention dropped everything we were asked to reach
                    continue
                return False
        except SourceError as exc:  # a slow broker: ask again later
            log.warning("caught-up check failed", extra={"error": str(exc)})
            return False
        return True

    # -- the source's events (SourceListener) ---------------------------------------------------

    def assigned(self, keys: list[TopicPartitionKey]) -> None:
        self._group_joined = True
        self._note_reachable()
        for key in keys:
            self._tracker.assign(key)
            self._assigned.add(key)
        self._paused = False  # new assignments start fetching; backpressure re-applies
        log.info("partitions assigned", extra={"partitions": _names(keys)})

    def revoked(self, keys: list[TopicPartitionKey]) -> None:
        revoked = set(keys)
        if not self._closing:
            dropped = self._drop_unsent(revoked)
            in_flight = self._settler.in_flight
            deadline = self._clock.monotonic() + self.config.delivery.revoke_grace_s
            while self._clock.monotonic() < deadline and any(in_flight[key] > 0 for key in revoked):
                self._settle_results(block_s=0.05)
                self._dlq.poll()
            log.info(
                "partitions revoked",
                extra={"partitions": _names(keys), "unsent_dropped": len(dropped)},
            )
        self._commit(asynchronous=False, keys=keys)
        self._forget(revoked)

    def lost(self, keys: list[TopicPartitionKey]) -> None:
        lost = set(keys)
        self._drop_unsent(lost)
        self._forget(lost)
        log.warning("partitions lost; nothing committed", extra={"partitions": _names(keys)})

    def committed(
        self, confirmed: dict[TopicPartitionKey, int], failed: int, error: str | None
    ) -> None:
        """The broker's answer to a commit: only confirmed positions count as committed."""
        self._tracker.mark_committed(confirmed)
        for (topic, partition), position in confirmed.items():
            self.metrics.committed_offset.labels(topic, str(partition)).set(position)
        if error is not None or failed:
            self.metrics.commits.labels("error").inc()
            log.warning(
                "commit not confirmed; it is retried",
                extra={"error": error, "partitions": failed},
            )
        elif confirmed:
            self.metrics.commits.labels("ok").inc()

    def dlq_client_error(self, error: KafkaError) -> None:
        """The DLQ producer's error callback: logged, never the consumer's readiness (an idle
        producer's closed connections, or another DLQ cluster, say nothing of the source's
        brokers; a DLQ write that cannot succeed is handled where it is written)."""
        if self._repeats.allow(shape(error.str())):
            log.warning(
                "kafka client error (dead-letter producer)",
                extra={"error": error.name(), "detail": error.str()},
            )

    def client_error(self, error: KafkaError) -> None:
        """librdkafka's error callback of the source."""
        self._kafka_cause(error)
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.kafka_reachable = False
            self._kafka_was_down = True
        if self._repeats.allow(shape(error.str())):
            log.warning("kafka client error", extra={"error": error.name(), "detail": error.str()})

    def _drop_unsent(self, keys: set[TopicPartitionKey]) -> list[Pending]:
        """Unsent work of partitions this member no longer owns: their new owner reads it
        again from the committed offset."""
        dropped = self._batcher.remove_partitions(keys)
        self._pending_bytes -= sum(map(len, map(_payload, dropped)))
        kept = [i for i, span in enumerate(self._stalled_at) if span.key not in keys]
        self.stalled = [self.stalled[i] for i in kept]
        self._stalled_at = [self._stalled_at[i] for i in kept]
        return dropped

    def _forget(self, keys: set[TopicPartitionKey]) -> None:
        self._settler.forget(keys)
        self._assigned.difference_update(keys)

    # -- shutdown ------------------------------------------------------------------------------

    def _shutdown(self, reason: ExitReason) -> None:
        """Flush within the grace period, commit what is settled, leave the group."""
        if reason not in ("fatal", "error"):  # nothing new is sent when something is broken
            self._submit(self._batcher.drain())
            deadline = self._clock.monotonic() + self.config.delivery.shutdown_grace_s
            while self._in_flight and self._clock.monotonic() < deadline:
                self._settle_results(block_s=0.05)
                self._dlq.poll()
                if self._fatal is not None and self._fatal.exit_reason == "fatal":
                    break
            self._dlq.flush(max(0.0, deadline - self._clock.monotonic()))
        if self._in_flight and self._delivery is not None:
            self._delivery.cancel_all()
        self._commit(asynchronous=False)
        self.summary.last_commit(self._clock.monotonic())
        self._update_gauges()
        self._closing = True
        self._source.close()


# Identity fields of a mapped event: in its `user`, and `oppref` at the top.
_USER_IDENTITY = frozenset(IDENTITY_FIELDS) - {"oppref"}
_payload = operator.attrgetter("payload")
_timestamp = operator.attrgetter("timestamp_ms")


def _offsets(run: list[Record]) -> range | list[int]:
    """The offsets of a run of records of one partition (increasing): a range unless some are
    missing (compaction, transaction markers)."""
    first = cast(int, run[0].offset())
    last = cast(int, run[-1].offset())
    if last - first + 1 == len(run):
        return range(first, last + 1)
    return cast(list[int], [record.offset() for record in run])  # (a methodcaller is slower)


def _identity_fields(shape: int) -> frozenset[str]:
    """The identity fields of a mapped event of this `Mapped.shape`: its `user` keys that are
    identities, and oppref."""
    user_keys = [key for bit, key in enumerate(USER_FIELDS) if shape >> bit & 1]
    return _USER_IDENTITY.intersection(user_keys) | ({"oppref"} if shape & OPPREF_BIT else set())


def _names(keys: Iterable[TopicPartitionKey]) -> list[str]:
    return [f"{topic}[{partition}]" for topic, partition in keys]
