"""Progress of a bounded run (backfill, DLQ replay) and its final report.

On a terminal: one bar redrawn in place on stderr (done / total, rate, ETA) and a readable
summary on stdout. Otherwise: a JSON `progress` log line per tick and the summary as one JSON
object on stdout, so jobs and scripts can parse both.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, Any

import orjson

from consumer.live.pipeline import Summary

log = logging.getLogger("consumer.progress")

_BAR_WIDTH = 24
_RATE_WINDOW_S = 10.0
# The pipeline calls back about once per commit interval, more often when idle.
_BAR_INTERVAL_S = 0.25
_LOG_INTERVAL_S = 5.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Fed by `Pipeline.on_progress` with the run's `Summary`; `done` = records read."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self._stream = stream or sys.stderr
        self.interactive = self._stream.isatty()
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._drawn = False
        self._interval_s = _BAR_INTERVAL_S if self.interactive else _LOG_INTERVAL_S
        self._shown_at: float | None = None

    def snapshot(self, summary: Summary) -> dict[str, Any]:
        """done/total, the recent rate (events read per second) and the ETA it implies."""
        now = self._clock()
        done = summary.read
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and now - samples[0][0] > _RATE_WINDOW_S:
            samples.popleft()
        first_at, first_done = samples[0]
        rate = (done - first_done) / (now - first_at) if now > first_at else 0.0
        remaining = max(0, self.total - done)
        return {
            "done": done,
            "total": self.total,
            "percent": round(100.0 * done / self.total, 1) if self.total else 100.0,
            "events_per_s": round(rate, 1),
            "eta_s": round(remaining / rate, 1) if rate > 0 else None,
            "delivered": summary.delivered,
            "skipped": sum(summary.skipped.values()),
            "dead_lettered": sum(summary.dead_lettered.values()),
        }

    def update(self, summary: Summary) -> None:
        now = self._clock()
        if self._shown_at is not None and now - self._shown_at < self._interval_s:
            return
        self._shown_at = now
        state = self.snapshot(summary)
        if not self.interactive:
            log.info("progress", extra={"run": self.label, **state})
            return
        filled = (
            int(_BAR_WIDTH * min(1.0, state["done"] / self.total)) if self.total else _BAR_WIDTH
        )
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        eta = _duration(state["eta_s"]) if state["eta_s"] is not None else "?"
        line = (
            f"\r{self.label} [{bar}] {state['done']:,}/{self.total:,} {state['percent']:5.1f}% "
            f"{state['events_per_s']:,.0f} ev/s ETA {eta}  delivered {state['delivered']:,} "
            f"skipped {state['skipped']:,} dead-lettered {state['dead_lettered']:,}"
        )
        self._stream.write(line + "\x1b[K")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line so what follows starts on a fresh one."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


_RULE = "-" * 64


def summary_lines(summary: dict[str, Any], title: str) -> list[str]:
    """The human summary of a run (`demo`, `run --until-caught-up`): counts by outcome and the
    check that every event read was settled."""
    rows: list[tuple[str, object]] = [
        ("events read", summary["read"]),
        ("delivered (accepted by the API)", summary["delivered"]),
    ]
    rows += [(f"skipped: {reason}", n) for reason, n in sorted(summary["skipped"].items())]
    rows += [
        (f"dead-lettered: {reason}", n) for reason, n in sorted(summary["dead_lettered"].items())
    ]
    rows += [
        ("HTTP requests (batches)", f"{summary['requests']} ({summary['batches']})"),
        ("throughput", f"{summary['events_per_s']:,.0f} events/s"),
    ]
    settled = (
        summary["delivered"]
        + summary.get("filtered", 0)
        + sum(summary["skipped"].values())
        + sum(summary["dead_lettered"].values())
    )
    verdict = "every event accounted for" if settled == summary["read"] else "EVENTS MISSING"
    return [
        _RULE,
        title,
        _RULE,
        *(f"{label:<44}{value!s:>20}" for label, value in rows),
        _RULE,
        f"{verdict}: {settled} of {summary['read']} settled, offsets committed",
    ]


def _text_lines(report: dict[str, Any], indent: str = "") -> Iterable[str]:
    dry_run = report.get("dry_run") is True
    for key, value in report.items():
        # A dry run dead-letters nothing: it counts what would have been.
        name = (
            "would be dead-lettered"
            if dry_run and key == "dead_lettered"
            else key.replace("_", " ")
        )
        if isinstance(value, dict):
            if not value:
                yield f"{indent}{name:<24} -"
                continue
            yield f"{indent}{name}"
            yield from _text_lines(value, indent + "  ")
        elif isinstance(value, list):
            yield f"{indent}{name}"
            for entry in value:
                yield f"{indent}  {orjson.dumps(entry).decode()}"
        else:
            yield f"{indent}{name:<24} {value}"


def print_report(report: dict[str, Any], stream: IO[str] | None = None) -> None:
    """The final report: readable text on a terminal, one JSON object otherwise."""
    out = stream or sys.stdout
    if out.isatty():
        out.write("\n".join(_text_lines(report)) + "\n")
    else:
        out.write(orjson.dumps(report).decode() + "\n")
    out.flush()
