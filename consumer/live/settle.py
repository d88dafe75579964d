"""Where every consumed offset ends: delivered, skipped, filtered, or dead-lettered and
acknowledged by the broker, exactly once. `Settler` turns each outcome into the offset
tracker's state, a DLQ write, the metrics and the run's `Summary`; `DlqBreaker` is the limit on
dead letters.
"""

from __future__ import annotations

import logging
import operator
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from consumer.codes import DlqReason, SkipReason
from consumer.errors import DlqBreakerTripped, FatalDeliveryError
from consumer.live.batching import Batch, Pending
from consumer.live.delivery import BatchResult
from consumer.live.dlq import DeadLetter, DeadLetterSink, Origin
from consumer.live.offsets import OffsetTracker, Span, TopicPartitionKey
from consumer.live.source import Record
from consumer.observability.inspector import Inspector, api_error_field
from consumer.observability.metrics import Metrics

log = logging.getLogger("consumer.pipeline")


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
    monotonic: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @property
    def elapsed_s(self) -> float:
        return (self.finished_at or self.monotonic()) - self.started_at

    @property
    def events_per_s(self) -> float:
        if self.first_read_at is None:
            return 0.0
        busy = (self.finished_at or self.monotonic()) - self.first_read_at
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

    def first_read(self, now: float) -> None:
        self.first_read_at = now
        self.first_read_cpu_s = time.process_time()
        self.first_read_cpu_wait_s = cpu_wait_s()

    def last_commit(self, now: float) -> None:
        self.last_commit_at = now
        self.last_commit_cpu_s = time.process_time()
        self.last_commit_cpu_wait_s = cpu_wait_s()

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


def cpu_wait_s() -> float | None:
    """Seconds this thread has been runnable but waiting for a core (Linux schedstat), so
    that a busy machine is not mistaken for an idle consumer; None where not available."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as file:
            return int(file.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class DlqBreaker:
    """Trips when more than `max_ratio` of the last `window` outcomes were dead-lettered.

    Its clock is the count of outcomes (events mapped, skipped or dead-lettered), not time.
    """

    def __init__(self, window: int, max_ratio: float) -> None:
        self._window = window
        self._max_ratio = max_ratio
        self._seen = 0
        self._dead: deque[int] = deque()  # sequence numbers of dead letters, within the window
        self.tripped: DlqBreakerTripped | None = None

    def passed(self, count: int = 1) -> None:
        self._seen += count

    def dead_lettered(self, counted: bool) -> None:
        """`counted`: the event was already counted once (mapped, then refused at send)."""
        if not counted:
            self._seen += 1
        seen = self._seen
        dead = self._dead
        dead.append(seen)
        while dead[0] <= seen - self._window:
            dead.popleft()
        if len(dead) > self._max_ratio * self._window and self.tripped is None:
            self.tripped = DlqBreakerTripped(len(dead), self._window, self._max_ratio)
            log.error(
                "DLQ breaker: too many events dead-lettered; stopping",
                extra={
                    "dead_lettered": len(dead),
                    "window": self._window,
                    "max_ratio": self._max_ratio,
                },
            )


class Settler:
    def __init__(
        self,
        tracker: OffsetTracker,
        summary: Summary,
        metrics: Metrics,
        dead_letters: DeadLetterSink,
        breaker: DlqBreaker,
        dry_run: bool,
        inspector: Inspector | None = None,
    ) -> None:
        self.tracker = tracker
        self.summary = summary
        self.breaker = breaker
        self._metrics = metrics
        self._dead_letters = dead_letters
        self._dry_run = dry_run
        self._inspector = inspector
        # Per partition: events sent or being dead-lettered, not settled yet (a revoke waits).
        self.in_flight: Counter[TopicPartitionKey] = Counter()

    def filtered(self, span: Span, offset: int) -> None:
        self.tracker.settle_offset(span, offset)
        self.summary.filtered += 1

    def skipped(self, span: Span, offset: int, reason: SkipReason) -> None:
        self.summary.skipped[reason] += 1
        self._metrics.events_skipped.labels(reason).inc()
        self.tracker.settle_offset(span, offset)
        self.breaker.passed()

    def mapped(self, per_pixel: Mapping[str, int]) -> None:
        """Events mapped (then sent, or settled in a dry run)."""
        for pixel, count in per_pixel.items():
            self.breaker.passed(count)
            self.summary.mapped += count
            self._metrics.events_mapped.labels(pixel).inc(count)

    def dead_letter(
        self,
        record: Record,
        span: Span,
        origin: Origin | None,
        reason: DlqReason,
        text: str,
        field_path: str | None = None,
        status: int | None = None,
        pixel: str | None = None,
        counted: bool = False,
    ) -> None:
        """Write to the DLQ; the offset settles when the broker acknowledges the write."""
        key = span.key
        offset = cast(int, record.offset())
        self.breaker.dead_lettered(counted=counted)
        if self._dry_run:
            self.summary.dead_lettered[reason] += 1
            self.tracker.settle_offset(span, offset)
            return
        if origin is None:
            origin = Origin.of(record)
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
        self.in_flight[key] += 1
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
            self.in_flight[key] -= 1
            self.summary.dead_lettered[reason] += 1
            self._metrics.events_dead_lettered.labels(reason).inc()
            self.tracker.settle_offset(span, offset)

        self._dead_letters.write(letter, acked)

    def sent(self, batch: Batch) -> None:
        # Counted in C once per batch; its result reuses the counts when all is delivered.
        spans = batch.spans = Counter(map(_span, batch.items))
        in_flight = self.in_flight
        for span, count in spans.items():
            in_flight[span.key] += count
        self.summary.batches += 1

    def batch_result(
        self, result: BatchResult, assigned: set[TopicPartitionKey]
    ) -> FatalDeliveryError | None:
        """Settle what the API answered for a batch; its fatal error, when it refused the
        credentials or the pixel (then nothing of the batch is settled)."""
        batch = result.batch
        self.summary.requests += result.requests
        spans = batch.spans
        if spans is None:  # not through `sent`
            spans = batch.spans = Counter(map(_span, batch.items))
        in_flight = self.in_flight
        for span, count in spans.items():
            key = span.key
            if key in assigned:
                in_flight[key] -= count
            else:  # revoked meanwhile: its count was forgotten
                in_flight.pop(key, None)
        if result.fatal is not None:
            return result.fatal  # not delivered, not dead-lettered
        pixel = batch.pixel_id
        if self._inspector is not None:
            self._inspect(result)
        delivered = result.delivered
        if delivered:
            self.summary.delivered += len(delivered)
            self._metrics.events_delivered.labels(pixel).inc(len(delivered))
            self._settle_delivered(delivered, spans if len(delivered) == len(batch.items) else None)
            coverage: Counter[str] = Counter()
            for names, count in Counter(map(_identity, delivered)).items():  # shapes, in C
                for name in names:
                    coverage[name] += count
            for name, count in coverage.items():
                self._metrics.identity_delivered.labels(pixel, name).inc(count)
        for rejection in result.rejected:
            item = rejection.item
            self.dead_letter(
                item.record,
                item.span,
                item.origin,
                rejection.reason,
                rejection.message,
                rejection.field,
                rejection.status,
                pixel,
                counted=True,
            )
        return None

    def _settle_delivered(self, delivered: list[Pending], spans: dict[Span, int] | None) -> None:
        """`spans`: the counts per span of `delivered`, when known. A span whose unsettled
        records are all here settles at once; the others offset by offset."""
        if spans is None:
            spans = Counter(map(_span, delivered))
        tracker = self.tracker
        partial: set[Span] = set()
        for span, count in spans.items():
            if count == span.left:
                tracker.settle_span(span)
            else:
                partial.add(span)
        if partial:
            settle = tracker.settle_offset
            for item in delivered:
                if item.span in partial:
                    settle(item.span, item.offset)

    def _inspect(self, result: BatchResult) -> None:
        assert self._inspector is not None
        pixel = result.batch.pixel_id
        self._inspector.delivered(pixel, result.delivered)
        for rejection in result.rejected:
            by_api = rejection.reason == "rejected_by_api"
            self._inspector.sent(
                "rejected_by_api" if by_api else "dead_lettered",
                pixel,
                [rejection.item],
                rejection.reason,
                rejection.field or api_error_field(rejection.message),
                rejection.status,
                rejection.message,
            )

    def forget(self, keys: set[TopicPartitionKey]) -> None:
        for key in keys:
            self.tracker.forget(key)
            self.in_flight.pop(key, None)


_span = operator.attrgetter("span")
_identity = operator.attrgetter("identity")
