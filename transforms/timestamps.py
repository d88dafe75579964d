"""Event time: the three forms CA sends, and the window the API accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

# The API accepts events from the last 7 days up to 10 minutes ahead (both bounds inclusive).
WINDOW_PAST_MS: Final = 7 * 24 * 60 * 60 * 1000
WINDOW_FUTURE_MS: Final = 10 * 60 * 1000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_MAX_EPOCH_DIGITS: Final = 19


def parse_timestamp_ms(value: object) -> int | None:
    """Epoch ms from an integer, a numeric string or ISO-8601 with an offset; None otherwise.

    Floats, booleans, negative numbers and ISO-8601 without an offset are refused; digits
    below the millisecond are truncated.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return int(text) if len(text) <= _MAX_EPOCH_DIGITS else None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    try:
        return (moment - _EPOCH) // _ONE_MS
    except OverflowError:
        return None


def in_window(timestamp_ms: int, now_ms: int) -> bool:
    return now_ms - WINDOW_PAST_MS <= timestamp_ms <= now_ms + WINDOW_FUTURE_MS
