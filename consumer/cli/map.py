"""`capi-consumer map`: CA events as JSON lines on stdin → one outcome line each on stdout.

Streams in chunks of lines (never the whole input in memory): exactly one output line per input
line, in order. Exit 0 once every line was read, whatever the outcomes; 2 for a bad
configuration. Input longer than one chunk is mapped by one worker process per CPU, chunks
written back in input order, at most two chunks per worker in flight.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import chain, islice
from typing import IO, Any, Final

import orjson

from consumer.cli.startup import SMALLEST_EPOCH_MS, load_or_exit, tune_memory
from consumer.exit_codes import EXIT_CONFIG, EXIT_OK, EXIT_UNEXPECTED
from transforms import CompiledMapping, Failed, Mapped, MappingSettings, Outcome, Skipped, map_event

CHUNK_LINES: Final = 1000
MAX_WORKERS: Final = 8
_MAPPING_KEYS: Final = frozenset(MappingSettings.model_fields)

_INVALID_JSON: Final = orjson.dumps(
    {"error": {"code": "invalid_json", "field": "", "message": "the line is not valid JSON"}}
)


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """The `map` output object: the CAPI event, `{"skipped": ...}` or `{"error": ...}`."""
    if isinstance(outcome, Mapped):
        return outcome.event
    if isinstance(outcome, Skipped):
        return {"skipped": {"reason": outcome.reason, "event_name": outcome.event_name}}
    return {"error": {"code": outcome.code, "field": outcome.field, "message": outcome.message}}


def map_lines(lines: Iterable[bytes], compiled: CompiledMapping, now_ms: int) -> list[bytes]:
    """One compact JSON line (without newline) per input line."""
    out: list[bytes] = []
    append = out.append
    for line in lines:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            append(_INVALID_JSON)
            continue
        outcome = map_event(event, compiled, now_ms)
        try:
            append(orjson.dumps(outcome_json(outcome)))
        except orjson.JSONEncodeError:  # defensive: keep one line per input line
            failed = Failed("invalid_value", "", "the mapped event cannot be written as JSON")
            append(orjson.dumps(outcome_json(failed)))
    return out


def render_chunk(lines: Iterable[bytes], compiled: CompiledMapping, now_ms: int) -> bytes:
    """The output of a chunk of lines: one newline-terminated line each, one write."""
    return b"\n".join(map_lines(lines, compiled, now_ms)) + b"\n"


def _chunks(source: IO[bytes]) -> Iterator[list[bytes]]:
    lines = iter(source)
    while chunk := list(islice(lines, CHUNK_LINES)):
        yield chunk


def _worker_count() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(cpus, MAX_WORKERS)


def map_stream(
    source: IO[bytes],
    sink: IO[bytes],
    settings: MappingSettings,
    now_ms: int,
    workers: int | None = None,
) -> None:
    """Map every line of `source` to `sink`, in order; in worker processes when it pays."""
    compiled = settings.compile()
    chunks = _chunks(source)
    first = next(chunks, None)
    if first is None:
        return
    workers = _worker_count() if workers is None else workers
    if len(first) < CHUNK_LINES or workers < 2:  # small input: no process start-up
        for chunk in chain([first], chunks):
            sink.write(render_chunk(chunk, compiled, now_ms))
        sink.flush()
        return
    mapping = settings.model_dump(include=set(_MAPPING_KEYS))
    with ProcessPoolExecutor(
        workers, initializer=_start_worker, initargs=(mapping, now_ms)
    ) as pool:
        pending: deque[Future[bytes]] = deque()
        try:
            for chunk in chain([first], chunks):
                pending.append(pool.submit(_map_chunk, chunk))
                if len(pending) >= 2 * workers:
                    sink.write(pending.popleft().result())
            while pending:
                sink.write(pending.popleft().result())
            sink.flush()
        finally:
            for future in pending:
                future.cancel()


# Per worker process: the compiled mapping and the clock, set once by `_start_worker`.
_worker: dict[str, Any] = {}


def _start_worker(mapping: dict[str, Any], now_ms: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _worker["compiled"] = MappingSettings.model_validate(mapping).compile()
    tune_memory()
    _worker["now_ms"] = now_ms


def _map_chunk(chunk: list[bytes]) -> bytes:
    return render_chunk(chunk, _worker["compiled"], _worker["now_ms"])


def command(args: argparse.Namespace) -> int:
    if args.diff is not None:
        from consumer.cli.map_diff import command as diff_command

        return diff_command(args)
    config = load_or_exit(args.config)
    if args.now is not None and args.now < SMALLEST_EPOCH_MS:
        print(
            f"--now: {args.now} looks like epoch seconds; give epoch milliseconds", file=sys.stderr
        )
        return EXIT_CONFIG
    now_ms = args.now if args.now is not None else time.time_ns() // 1_000_000
    tune_memory()
    try:
        map_stream(sys.stdin.buffer, sys.stdout.buffer, config, now_ms)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly; point stdout at /dev/null so the
        # interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_UNEXPECTED
    return EXIT_OK
