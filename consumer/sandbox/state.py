"""The sandbox's memory: who may send where, what was stored, counters, injected faults.

Plain classes with no HTTP in them; `server.py` drives them. Stored events cost little: per
pixel, one dict per event name mapping each id to its receipt time (the int object is shared by
the whole batch), plus a bounded deque of recent events for the monitoring endpoint.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consumer.sandbox.settings import (
    DEFAULT_API_KEY,
    FaultSettings,
    FaultStep,
    PixelSettings,
    SandboxSettings,
)
from transforms.capi_rules import Rules, dedup_name, normalize_event

Clock = Callable[[], int]
"""Epoch milliseconds."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Counters:
    """Requests to `POST /v1/events` and what became of their events."""

    requests: int = 0
    accepted: int = 0  # events stored
    duplicates: int = 0  # events answered with success, not stored again
    validated: int = 0  # events of successful `validate_only` requests
    rejected: Counter[str] = field(default_factory=Counter)  # requests, by reason
    faults: Counter[str] = field(default_factory=Counter)  # injected faults, by kind

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "validated": self.validated,
            "rejected": dict(self.rejected),
            "faults": dict(self.faults),
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rejected request: status, reason code, message, the failing path (`events[3].id`) and
    the event it names, when there is one."""

    status: int
    reason: str
    message: str
    path: str | None
    event: dict[str, Any] | None


class PixelStore:
    """One pixel's stored events: dedup index and the most recent events."""

    __slots__ = ("counters", "ids", "recent", "rejections")

    def __init__(self, recent_kept: int) -> None:
        # dedup name (type, or custom_event_name) → event id → receipt time (epoch ms).
        self.ids: dict[str, dict[str, int]] = {}
        self.recent: deque[tuple[int, dict[str, Any]]] = deque(maxlen=recent_kept)
        # The newest rejected requests (for `GET /_sandbox/`): receipt time and what was wrong.
        self.rejections: deque[tuple[int, Rejection]] = deque(maxlen=recent_kept)
        self.counters = Counters()

    def stored(self) -> int:
        return sum(len(ids) for ids in self.ids.values())


@dataclass(frozen=True, slots=True)
class StoreResult:
    received: int
    stored: int
    duplicates: int
    validate_only: bool = False


class FaultInjector:
    """The faults of one scope (the whole sandbox, or one pixel)."""

    def __init__(self, settings: FaultSettings, default_seed: int, scope: str) -> None:
        self.settings = settings
        self.script: deque[FaultStep] = deque(settings.script)
        seed = default_seed if settings.seed is None else settings.seed
        # A string seed is hashed deterministically (not with the per-process str hash).
        self._random = random.Random(f"{seed}:{scope}")
        self.poison_ids = frozenset(settings.poison_ids)
        self._buckets: dict[str, tuple[float, int]] = {}  # pid → (tokens, at ms)

    def next_step(self) -> FaultStep | None:
        if self.script:
            return self.script.popleft()
        if self.settings.rate and self._random.random() < self.settings.rate:
            return self._random.choice(self.settings.choices)
        return None

    def rate_limit_wait_s(self, pid: str, now_ms: int) -> float | None:
        """None when `pid` may send now (a token is taken), else seconds until it may."""
        rps = self.settings.rate_limit_rps
        if rps is None:
            return None
        capacity = max(1.0, rps)
        tokens, at_ms = self._buckets.get(pid, (capacity, now_ms))
        tokens = min(capacity, tokens + max(0, now_ms - at_ms) * rps / 1000)
        if tokens >= 1:
            self._buckets[pid] = (tokens - 1, now_ms)
            return None
        self._buckets[pid] = (tokens, now_ms)
        return (1 - tokens) / rps

    def reset_rate_limits(self) -> None:
        self._buckets.clear()

    def describe(self) -> dict[str, Any]:
        return {**self.settings.model_dump(), "script_left": len(self.script)}


@dataclass(frozen=True, slots=True)
class Denied:
    """An authentication or authorization failure: HTTP status, reason code, message."""

    status: int
    reason: str
    message: str


MISSING_SCOPES = "Missing scopes: ads.third_party_events.write"


class Access:
    """Which key may send to which pixel.

    Sandbox-wide keys may send to every pixel; a pixel's own keys only to it. With no key
    configured anywhere, `test-key` is a sandbox-wide key. With no pixel listed, any `pid` exists.
    """

    def __init__(self, settings: SandboxSettings) -> None:
        self.keys_by_pixel = {
            pixel.pixel_id: frozenset(key.get_secret_value() for key in pixel.api_keys)
            for pixel in settings.pixels
        }
        shared = frozenset(key.get_secret_value() for key in settings.api_keys)
        self.uses_default_key = not shared and not any(self.keys_by_pixel.values())
        self.shared_keys = frozenset({DEFAULT_API_KEY}) if self.uses_default_key else shared
        self.all_keys = self.shared_keys.union(*self.keys_by_pixel.values())
        self.advertiser_keys = frozenset(k.get_secret_value() for k in settings.advertiser_api_keys)

    def check_key(self, key: str | None) -> Denied | None:
        if key is not None and key in self.all_keys:
            return None
        if key is not None and key in self.advertiser_keys:
            return Denied(401, "advertiser_key", MISSING_SCOPES)
        return Denied(401, "invalid_api_key", "Missing or invalid API key in Authorization header.")

    def pixel_exists(self, pid: str) -> bool:
        return not self.keys_by_pixel or pid in self.keys_by_pixel

    def check_pixel(self, key: str, pid: str, unknown_status: int) -> Denied | None:
        if not self.pixel_exists(pid):
            return Denied(unknown_status, "unknown_pixel", "Pixel not found.")
        if key in self.shared_keys or key in self.keys_by_pixel.get(pid, ()):
            return None
        return Denied(403, "pixel_not_allowed", "This API key may not send events to this pixel.")


class SandboxState:
    """Everything the sandbox remembers; mutated only from its event loop."""

    def __init__(self, settings: SandboxSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.access = Access(settings)
        self._clock = clock or wall_clock_ms
        self.clock_offset_ms = settings.clock_offset_ms
        self._pixel_settings: dict[str, PixelSettings] = {p.pixel_id: p for p in settings.pixels}
        self.faults = FaultInjector(settings.faults, settings.seed, scope="")
        self._pixel_faults: dict[str, FaultInjector] = {
            p.pixel_id: FaultInjector(p.faults, settings.seed, scope=p.pixel_id)
            for p in settings.pixels
            if p.faults is not None
        }
        self.totals = Counters()
        self.pixels: dict[str, PixelStore] = {}

    def now_ms(self) -> int:
        return self._clock() + self.clock_offset_ms

    # --- configuration per pixel ---

    def rules_for(self, pid: str) -> Rules:
        pixel = self._pixel_settings.get(pid)
        return pixel.rules if pixel is not None and pixel.rules is not None else self.settings.rules

    def faults_for(self, pid: str | None) -> FaultInjector:
        return self._pixel_faults.get(pid, self.faults) if pid else self.faults

    def set_faults(self, faults: FaultSettings, pid: str | None = None) -> FaultInjector:
        injector = FaultInjector(faults, self.settings.seed, scope=pid or "")
        if pid:
            self._pixel_faults[pid] = injector
        else:
            self.faults = injector
        return injector

    # --- counting ---

    def pixel(self, pid: str) -> PixelStore:
        store = self.pixels.get(pid)
        if store is None:
            store = self.pixels[pid] = PixelStore(self.settings.recent_events_per_pixel)
        return store

    def counters(self, pid: str | None) -> list[Counters]:
        """The totals and, for a pixel that exists, its own counters: update them all."""
        if pid and self.access.pixel_exists(pid):
            return [self.totals, self.pixel(pid).counters]
        return [self.totals]

    # --- storing ---

    def store(self, pid: str, events: list[dict[str, Any]], validate_only: bool) -> StoreResult:
        """Store a valid batch: first copy of each dedup key wins (also inside the batch)."""
        if validate_only:
            for counters in self.counters(pid):
                counters.validated += len(events)
            return StoreResult(received=len(events), stored=0, duplicates=0, validate_only=True)
        pixel = self.pixel(pid)
        now = self.now_ms()
        expired_before = (
            None
            if self.settings.dedup_window_s is None
            else now - int(self.settings.dedup_window_s * 1000)
        )
        in_batch: set[tuple[str, str]] | None = None if self.settings.dedup_within_batch else set()
        stored = duplicates = 0
        for event in events:
            name = dedup_name(event)
            event_id: str = event["id"]
            ids = pixel.ids.get(name)
            if ids is None:
                ids = pixel.ids[name] = {}
            first_seen = ids.get(event_id)
            if first_seen is None or (expired_before is not None and first_seen < expired_before):
                ids[event_id] = now
                stored += 1
                if in_batch is not None:
                    in_batch.add((name, event_id))
            elif in_batch is not None and (name, event_id) in in_batch:
                stored += 1  # dedup only across batches: this copy counts as accepted too
            else:
                duplicates += 1
                continue
            pixel.recent.append((now, event))
        for counters in self.counters(pid):
            counters.accepted += stored
            counters.duplicates += duplicates
        return StoreResult(received=len(events), stored=stored, duplicates=duplicates)

    def reset(self) -> None:
        """Forget stored events and counters (faults and clock stay as they are)."""
        self.pixels.clear()
        self.totals = Counters()
        self.faults.reset_rate_limits()
        for injector in self._pixel_faults.values():
            injector.reset_rate_limits()

    def note_rejection(self, pid: str | None, rejection: Rejection) -> None:
        if pid and self.access.pixel_exists(pid):
            self.pixel(pid).rejections.append((self.now_ms(), rejection))

    # --- reading ---

    def page_events(self) -> dict[str, Any]:
        """What `GET /_sandbox/` shows: stored and rejected events of every pixel, newest first,
        in the events inspector's format (identities masked as there)."""
        from consumer.observability.inspector import api_error_field, private_view

        events: list[dict[str, Any]] = []
        for pid, store in self.pixels.items():
            for at, event in reversed(store.recent):
                events.append(_page_event(at, pid, "stored", event))
            for at, rejection in reversed(store.rejections):
                shown = _page_event(at, pid, "rejected", rejection.event)
                shown.update(
                    reason=rejection.reason,
                    status=rejection.status,
                    field=api_error_field(rejection.path),
                    message=rejection.message,
                )
                events.append(shown)
        for shown in events:
            if shown["payload"] is not None:
                shown["payload"] = private_view(shown["payload"])
        events.sort(key=lambda shown: shown["at_ms"], reverse=True)
        rejected = sum(store.counters.rejected.total() for store in self.pixels.values())
        stored = sum(store.counters.accepted for store in self.pixels.values())
        return {"events": events, "counts": {"stored": stored, "rejected": rejected}}

    def stats(self) -> dict[str, Any]:
        pixels = {
            pid: {**store.counters.as_dict(), "stored": store.stored()}
            for pid, store in self.pixels.items()
        }
        stored = sum(p["stored"] for p in pixels.values())
        return {**self.totals.as_dict(), "stored": stored, "pixels": pixels}

    def stored_ids(self, pid: str, name: str | None = None) -> list[str]:
        """Every stored event id of a pixel (of one event name when given), oldest first."""
        store = self.pixels.get(pid)
        if store is None:
            return []
        if name is not None:
            return list(store.ids.get(name, ()))
        return [event_id for ids in store.ids.values() for event_id in ids]

    def recent_events(self, pid: str, limit: int) -> list[dict[str, Any]]:
        """The newest stored events of a pixel, newest first, as the API keeps them."""
        store = self.pixels.get(pid)
        if store is None or limit <= 0:
            return []
        rules = self.rules_for(pid)
        newest = itertools.islice(reversed(store.recent), limit)
        return [
            {**normalize_event(event, rules), "channel": "server_to_server", "received_ms": at}
            for at, event in newest
        ]


def _page_event(at: int, pid: str, outcome: str, event: dict[str, Any] | None) -> dict[str, Any]:
    event_id = event.get("id") if isinstance(event, dict) else None
    event_type = event.get("type") if isinstance(event, dict) else None
    return {
        "at_ms": at,
        "pixel": pid,
        "id": event_id if isinstance(event_id, str) else None,
        "type": event_type if isinstance(event_type, str) else None,
        "outcome": outcome,
        "reason": None,
        "field": None,
        "status": None,
        "payload": event if isinstance(event, dict) else None,
        "message": None,
    }
