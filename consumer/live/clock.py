"""The loop's two clocks, injected so tests drive time: the wall clock (event timestamps, the
API's window, batch linger) and the monotonic one (deadlines, intervals, throughput)."""

from __future__ import annotations

import time as _time
from typing import Final, Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back."""
        ...


class SystemClock:
    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)


SYSTEM_CLOCK: Final = SystemClock()
