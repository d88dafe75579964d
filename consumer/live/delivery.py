"""Send batches to the CAPI endpoint: one aiohttp session on its own event-loop thread.

Fault classes (docs/operations.md):
- 2xx: accepted.
- transient (408, 429, 5xx but 501, timeouts, connection errors): retried without limit, same
  body and ids, exponential backoff with full jitter, `Retry-After` honoured (capped); a 429
  pauses every request to that pixel, not only the one that got it.
- per-event (400, 422 and other 4xx): events that fail the local API rules are rejected at once;
  otherwise the batch is bisected until the bad events are isolated; they are rejected with the
  API's message (redacted), the rest is delivered. 413 splits by size; a single event → too_large.
- fatal (401, 403, 404, 501): the result carries a `FatalDeliveryError`; the service stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson

from consumer.codes import DlqReason
from consumer.config import DeliverySettings
from consumer.errors import FatalDeliveryError
from consumer.live.batching import Batch, Pending
from consumer.observability.metrics import Metrics
from consumer.redaction import redact_text
from transforms import capi_rules

log = logging.getLogger("consumer.delivery")

FATAL_STATUSES = frozenset({401, 403, 404, 501})


@dataclass(slots=True)
class Rejection:
    item: Pending
    reason: DlqReason  # rejected_by_api | too_large | a local rule's code (`dlq_reason`)
    message: str
    status: int | None
    field: str | None = None


@dataclass(slots=True)
class BatchResult:
    batch: Batch
    delivered: list[Pending] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    fatal: FatalDeliveryError | None = None
    requests: int = 0


class ApiKey:
    """A bearer key from the config, or from a file re-read when it changes (key rotation)."""

    def __init__(self, value: str | None = None, path: str | None = None) -> None:
        self._value = value
        self._path = Path(path) if path else None
        self._stamp: tuple[float, int] | None = None

    def get(self) -> str:
        if self._path is None:
            return self._value or ""
        stat = self._path.stat()
        stamp = (stat.st_mtime, stat.st_size)
        if stamp != self._stamp:
            self._value = self._path.read_text(encoding="utf-8").strip()
            self._stamp = stamp
        return self._value or ""


def retry_after_seconds(header: str | None, now: float) -> float | None:
    """`Retry-After` as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not header:
        return None
    header = header.strip()
    if header.isascii() and header.isdigit():
        return float(int(header))
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def redact(message: str, items: list[Pending]) -> str:
    """Remove every value of these events from an API message (raw and JSON-escaped), so a
    message that quotes the payload cannot carry an IP, a user agent, oppref, obref, a city...
    Enumerations (type, action_source, currency, content_type) are kept: they explain errors."""
    values: set[str] = set()
    for item in items:
        _string_leaves(item.event, values)
    for value in sorted(values, key=len, reverse=True):
        escaped = orjson.dumps(value).decode()[1:-1]
        for form in {value, escaped, escaped.replace("/", "\\/")}:  # JSON may escape "/"
            if form in message:
                message = message.replace(form, "[redacted]")
    # What the API says on its own: keys, tokens, emails, phone numbers, IPs.
    return redact_text(message)[:300]


# API messages are read this far, redacted, then cut to 300 characters (never cut a value in
# half before redacting it).
_MESSAGE_READ = 8000
_KEPT_KEYS = frozenset({"type", "action_source", "currency", "content_type"})


def _string_leaves(node: Any, into: set[str], key: str = "") -> None:
    if isinstance(node, dict):
        for name, value in node.items():
            _string_leaves(value, into, name)
    elif isinstance(node, list):
        for value in node:
            _string_leaves(value, into, key)
    elif isinstance(node, str) and len(node) >= 3 and key not in _KEPT_KEYS:
        into.add(node)


def dlq_reason(violation: capi_rules.Violation) -> DlqReason:
    """The DLQ reason code of a local rule violation."""
    if violation.reason == "missing_field":
        return "missing_field"
    if violation.reason == "timestamp_out_of_window":
        return "timestamp_out_of_window"
    return "invalid_value"


def describe(violation: capi_rules.Violation) -> str:
    return f"{violation.field} {violation.message}".strip()


def api_message(body: bytes) -> str:
    """A short human message from an error body of any of the shapes seen in the wild."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:_MESSAGE_READ].decode("utf-8", "replace")
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            data = error
        elif isinstance(error, str):
            return error[:_MESSAGE_READ]
        parts = [str(data[k]) for k in ("field", "message", "detail") if data.get(k)]
        if parts:
            return ": ".join(parts)[:_MESSAGE_READ]
    return str(data)[:_MESSAGE_READ]


class Sender:
    """Delivery of one batch, with retries and bisection. Runs on the delivery loop."""

    def __init__(
        self,
        base_url: str,
        keys: dict[str, ApiKey],
        settings: DeliverySettings,
        metrics: Metrics,
        integration_source: str | None,
        validate_only: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = base_url.rstrip("/") + "/v1/events"
        self._keys = keys
        self._settings = settings
        self._metrics = metrics
        self._integration_source = integration_source
        self._validate_only = validate_only
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._pixel_resume_at: dict[str, float] = {}
        self.retrying = 0  # requests currently waiting to retry a transient fault

    async def open(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
        connector = aiohttp.TCPConnector(limit=self._settings.max_in_flight * 2)
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=connector, json_serialize=lambda o: orjson.dumps(o).decode()
        )
        self._slots = asyncio.Semaphore(self._settings.max_in_flight)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def deliver(self, batch: Batch) -> BatchResult:
        result = BatchResult(batch)
        try:
            await self._send(batch, result, known_bad=False)
        except FatalDeliveryError as exc:
            result.fatal = exc
        return result

    async def _send(self, batch: Batch, result: BatchResult, known_bad: bool) -> None:
        if not batch.items:
            return
        if known_bad and len(batch.items) > 1:
            await self._bisect(batch, result)
            return
        status, message = await self._post_until_not_transient(batch, result)
        pixel = batch.pixel_id
        if 200 <= status < 300:
            self._metrics.request(pixel, "accepted", str(status))
            result.delivered.extend(batch.items)
            return
        if status in FATAL_STATUSES:
            self._metrics.request(pixel, "fatal", str(status))
            raise FatalDeliveryError(pixel, status, redact(message, batch.items))
        if status == 413:
            self._metrics.request(pixel, "split", "413")
            if len(batch.items) == 1:
                result.rejected.append(
                    Rejection(batch.items[0], "too_large", "request too large (413)", status)
                )
                return
            for half in batch.split():
                await self._send(half, result, known_bad=False)
            return
        # A per-event fault: one or more events sink the batch.
        self._metrics.request(pixel, "rejected", str(status))
        if len(batch.items) == 1:
            result.rejected.append(
                Rejection(batch.items[0], "rejected_by_api", redact(message, batch.items), status)
            )
            return
        now_ms = int(self._clock() * 1000)
        locally_bad, rest = [], []
        for item in batch.items:
            violation = capi_rules.validate_event(item.event, now_ms)
            if violation is None:
                rest.append(item)
            else:
                locally_bad.append(item)
                result.rejected.append(
                    Rejection(
                        item, dlq_reason(violation), describe(violation), status, violation.field
                    )
                )
        if locally_bad:
            await self._send(batch.with_items(rest), result, known_bad=False)
        else:
            await self._bisect(batch, result)

    async def _bisect(self, batch: Batch, result: BatchResult) -> None:
        """`batch` is known to hold at least one bad event: send the left half; if it passes,
        the right half is known bad and is split without being sent whole."""
        left, right = batch.split()
        self._metrics.request(batch.pixel_id, "split", "bisect")
        before = len(result.delivered)
        await self._send(left, result, known_bad=False)
        left_clean = len(result.delivered) - before == len(left.items)
        await self._send(right, result, known_bad=left_clean)

    async def _post_until_not_transient(self, batch: Batch, result: BatchResult) -> tuple[int, str]:
        attempt = 0
        body = batch.body(self._integration_source, self._validate_only)
        pixel = batch.pixel_id
        while True:
            status, message, retry_after = await self._post(pixel, body, len(batch.items))
            result.requests += 1
            if not _is_transient(status):
                return status, message
            cause = "connection" if status == 0 else str(status)
            self._metrics.request(pixel, "retried", cause)
            self._metrics.retries.labels(pixel, cause).inc()
            delay = self._backoff(attempt)
            if retry_after:  # `Retry-After: 0` would mean a tight loop: back off as usual
                delay = min(retry_after, self._settings.retry.max_retry_after_s)
                self._metrics.retry_after_seconds.labels(pixel).inc(delay)
            if status == 429:
                # Everyone sending to this pixel waits, not only this request.
                resume_at = self._clock() + delay
                self._pixel_resume_at[pixel] = max(self._pixel_resume_at.get(pixel, 0), resume_at)
            log.warning(
                "transient CAPI fault, retrying",
                extra={"pixel": pixel, "status": status, "attempt": attempt + 1, "delay_s": delay},
            )
            self.retrying += 1
            try:
                await asyncio.sleep(delay)
            finally:
                self.retrying -= 1
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        retry = self._settings.retry
        ceiling = min(retry.max_backoff_s, retry.initial_backoff_s * (2 ** min(attempt, 30)))
        return random.uniform(0, ceiling)

    async def _post(self, pixel: str, body: bytes, events: int) -> tuple[int, str, float | None]:
        assert self._session is not None
        assert self._slots is not None
        async with self._slots:
            wait = self._pixel_resume_at.get(pixel, 0) - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            started = time.perf_counter()
            try:
                # Inside the try: a key file being rotated is a transient fault like the network.
                headers = {
                    "Authorization": f"Bearer {self._keys[pixel].get()}",
                    "Content-Type": "application/json",
                }
                async with self._session.post(
                    self._url, params={"pid": pixel}, data=body, headers=headers
                ) as response:
                    payload = await response.read()
                    status = response.status
                    retry_after = retry_after_seconds(
                        response.headers.get("Retry-After"), self._clock()
                    )
            except (aiohttp.ClientError, TimeoutError, OSError, UnicodeDecodeError) as exc:
                return 0, type(exc).__name__, None
            finally:
                self._metrics.request_seconds.labels(pixel).observe(time.perf_counter() - started)
            if status < 300:
                self._metrics.batch_events.observe(events)
                return status, "", None
            return status, api_message(payload), retry_after


def _is_transient(status: int) -> bool:
    return status in (0, 408, 429) or (status >= 500 and status != 501)


class Delivery(Protocol):
    """What the live loop needs of delivery (`DeliveryThread`; a fake in tests): batches in,
    every one of them back on `results` exactly once."""

    results: queue.SimpleQueue[BatchResult]

    @property
    def retrying(self) -> bool:
        """A request waits to retry a transient fault: consumption should pause."""
        ...

    def start(self) -> None: ...

    def submit(self, batch: Batch) -> None: ...

    def cancel_all(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...


class DeliveryThread:
    """An asyncio loop on its own thread: the main thread submits batches and reads results
    from `results` (a thread-safe queue), so Kafka work and rebalance callbacks never wait on
    the event loop and HTTP never waits on Kafka."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.results: queue.SimpleQueue[BatchResult] = queue.SimpleQueue()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="capi-delivery", daemon=True)
        self._futures: set[Future[None]] = set()
        self._ready = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.sender.open())
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def submit(self, batch: Batch) -> None:
        future = asyncio.run_coroutine_threadsafe(self._deliver(batch), self.loop)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    async def _deliver(self, batch: Batch) -> None:
        """Every submitted batch comes back as a result: an unexpected error is retried (the
        same ids: the API deduplicates what a failed attempt had already delivered)."""
        attempt = 0
        while True:
            try:
                self.results.put(await self.sender.deliver(batch))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                log.error(
                    "unexpected error delivering a batch; retrying",
                    extra={"error": type(exc).__name__, "attempt": attempt},
                )
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(attempt, 6)))

    @property
    def in_flight(self) -> int:
        return len(self._futures)

    @property
    def retrying(self) -> bool:
        return self.sender.retrying > 0

    def cancel_all(self) -> None:
        for future in list(self._futures):
            future.cancel()

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        self.cancel_all()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.sender.close(), self.loop).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
