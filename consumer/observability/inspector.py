"""The events inspector: the newest settled events of a running service, as they were sent.

`run` serves it on the observability port when `inspector.enabled` is true (`GET /inspector`,
`GET /inspector/events.json`). It is read-only with respect to delivery: the pipeline hands it
what it settled (one attribute check per settled batch when it is disabled), and it keeps a
bounded ring of events whose identities are masked before they are stored, so the ring never
holds clear text (`private_view`). API error texts arrive already redacted as for the DLQ
(`delivery.redact`).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import orjson

from consumer.codes import OUTCOMES, Outcome
from consumer.live.batching import Pending
from consumer.redaction import redact_text

MASK: Final = "***"
# User fields shown as they are: hashes are cut (`_short_hash`), countries are not identities.
_SHOWN_USER_FIELDS: Final = frozenset({"countries"})
# `events[3].data.contents[0].amount` in an API error text → `data.contents[0].amount`.
_API_PATH: Final = re.compile(
    r"events\[\d+\]\.((?:[A-Za-z_][A-Za-z0-9_]*|\[\d+\])(?:\.?(?:[A-Za-z_][A-Za-z0-9_]*|\[\d+\]))*)"
)


# The page loads nothing from elsewhere: its own script and style, JSON from its own origin.
PAGE_POLICY: Final = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)


def page_html(events_url: str, title: str) -> bytes:
    """The self-contained page (no external script, font or style), reading `events_url`."""
    template = (
        resources.files("consumer.observability").joinpath("inspector.html").read_text("utf-8")
    )
    return (
        template.replace("__EVENTS_URL__", orjson.dumps(events_url).decode())
        .replace("__TITLE__", title)
        .encode()
    )


_HEX_DIGEST: Final = re.compile(r"[0-9a-f]{64}")
# Envelope keys shown as they are; every other top-level key (an identity the producer put in
# the wrong place, a legacy name) is masked, as is a `user` that is not an object.
_SHOWN_ENVELOPE_KEYS: Final = frozenset(
    {"id", "type", "timestamp_ms", "custom_event_name", "action_source", "opt_out", "data"}
)


def _short_hash(value: object) -> object:
    """A SHA-256 hex digest cut to 8 digits; anything else in a hash field (a clear value the
    API would reject) is masked."""
    if isinstance(value, str) and _HEX_DIGEST.fullmatch(value):
        return value[:8] + "…"
    return MASK


def _url_without_query(url: object) -> object:
    if not isinstance(url, str):
        return MASK
    parts = urlsplit(url)
    path = redact_text(parts.path)  # an email or a phone number in a path segment
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, "", ""))


def _masked_user(user: object) -> object:
    if not isinstance(user, dict):
        return MASK
    masked: dict[str, Any] = {}
    for name, value in user.items():
        if name.endswith("_sha256"):
            shown = value if isinstance(value, list) else [value]
            masked[name] = [_short_hash(item) for item in shown]
        elif name in _SHOWN_USER_FIELDS:
            masked[name] = value
        else:
            masked[name] = MASK
    return masked


def private_view(event: dict[str, Any]) -> dict[str, Any]:
    """The event with no clear-text identity: `user` values masked except the hashes (their
    first 8 hex digits) and `countries`; `oppref` masked; `source_url` without its query; any
    key that is not a known non-identity envelope key masked (an allowlist: what the API
    rejects, e.g. in the sandbox's page, may carry identities anywhere)."""
    view: dict[str, Any] = {}
    for key, value in event.items():
        if key in _SHOWN_ENVELOPE_KEYS:
            view[key] = value
        elif key == "user":
            view[key] = _masked_user(value)
        elif key == "source_url":
            view[key] = _url_without_query(value)
        else:
            view[key] = MASK
    return view


def api_error_field(message: str | None) -> str | None:
    """The failing field (relative to the event) named in an API error text, if any."""
    if not message:
        return None
    found = _API_PATH.search(message)
    return found.group(1) if found else None


class Inspector:
    """A bounded ring of settled events (masked) and counters per outcome since start.

    Masking costs about 14 µs per event kept, so at most `max_events` delivered or skipped
    events are kept per second (a page refreshing every 2 s could show no more): enabling it
    costs at most ~1 % of a core whatever the throughput. Rejections and dead letters are
    always kept; the counters count everything. Written by the pipeline thread, read by the
    health server's thread: one lock.
    """

    def __init__(self, max_events: int, clock: Callable[[], float] = time.time) -> None:
        self.max_events = max_events
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._clock = clock
        self._lock = threading.Lock()
        self._second_started = 0.0
        self._second_left = max_events

    def _allowance(self, wanted: int) -> int:
        """How many of `wanted` routine events may still be kept this second."""
        now = self._clock()
        if now - self._second_started >= 1.0:
            self._second_started = now
            self._second_left = self.max_events
        granted = min(wanted, self._second_left)
        self._second_left -= granted
        return granted

    def record(
        self,
        outcome: Outcome,
        *,
        pixel: str | None,
        event_id: object,
        event_type: str | None,
        reason: str | None = None,
        field: str | None = None,
        status: int | None = None,
        payload: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        if outcome == "skipped" and not self._allowance(1):
            self.count_only(outcome, 1)
            return
        entry = {
            "at_ms": int(self._clock() * 1000),
            "pixel": pixel,
            "id": None if event_id is None else str(event_id),
            "type": event_type,
            "outcome": outcome,
            "reason": reason,
            "field": field,
            "status": status,
            "payload": None if payload is None else private_view(payload),
            "message": message,
        }
        with self._lock:
            self._counts[outcome] += 1
            self._events.append(entry)

    def count_only(self, outcome: Outcome, n: int) -> None:
        with self._lock:
            self._counts[outcome] += n

    def sent(
        self,
        outcome: Outcome,
        pixel: str,
        items: Iterable[Pending],
        reason: str | None = None,
        field: str | None = None,
        status: int | None = None,
        message: str | None = None,
    ) -> None:
        """Events that were mapped (and maybe sent): their payload as sent."""
        for item in items:
            event = item.event
            self.record(
                outcome,
                pixel=pixel,
                event_id=event.get("id"),
                event_type=event.get("type"),
                reason=reason,
                field=field,
                status=status,
                payload=event,
                message=message,
            )

    def delivered(self, pixel: str, items: list[Pending]) -> None:
        """A delivered batch: the newest of it within this second's allowance are kept."""
        not_kept = len(items) - self._allowance(len(items))
        if not_kept:
            self.count_only("delivered", not_kept)
        self.sent("delivered", pixel, items[not_kept:])

    def snapshot(self) -> dict[str, Any]:
        """`{"events": [...newest first], "counts": {...}}` (the JSON of the endpoint)."""
        with self._lock:
            events = list(self._events)
            counts = dict(self._counts)
        events.reverse()
        return {"events": events, "counts": counts}

    def snapshot_json(self) -> bytes:
        return orjson.dumps(self.snapshot())
