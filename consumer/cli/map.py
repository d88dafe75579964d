"""`capi-consumer map`: CA events as JSON lines on stdin → one outcome line each on stdout.

Streams in chunks of about 1 MiB of whole lines (never the whole input in memory): exactly one
output line per input line, in order. Exit 0 once every line was read, whatever the outcomes; 2
for a bad configuration. Input longer than one chunk is mapped by one worker process per CPU,
chunks written back in input order, at most two chunks per worker in flight.
"""

from __future__ import annotations

import argparse
import io
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

from consumer.cli.json_values import Projector, projector
from consumer.cli.startup import SMALLEST_EPOCH_MS, load_or_exit, tune_memory
from consumer.exit_codes import EXIT_CONFIG, EXIT_OK, EXIT_UNEXPECTED
from transforms import (
    CompiledMapping,
    Failed,
    Mapped,
    MappingSettings,
    Outcome,
    Skipped,
    map_event,
    map_values,
)

# A chunk is read and sent to a worker as one bytes object and split there: the parent does
# nothing per line. 1 MiB is about 1,000 lines of 1 KB.
CHUNK_BYTES: Final = 1 << 20
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


def map_lines(
    lines: Iterable[bytes],
    compiled: CompiledMapping,
    now_ms: int,
    project: Projector | None = None,
) -> list[bytes]:
    """One compact JSON line (without newline) per input line.

    With `project` (`json_values.projector(compiled)`), a line's values are read straight from
    its bytes; a line it declines is read the reference way, which gives the same output."""
    out: list[bytes] = []
    append = out.append
    dumps = orjson.dumps
    for line in lines:
        values = None if project is None else project(line)
        if values is not None:
            outcome = map_values(values, compiled, now_ms)
        else:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                append(_INVALID_JSON)
                continue
            outcome = map_event(event, compiled, now_ms)
        try:
            append(dumps(outcome_json(outcome)))
        except orjson.JSONEncodeError:  # defensive: keep one line per input line
            failed = Failed("invalid_value", "", "the mapped event cannot be written as JSON")
            append(dumps(outcome_json(failed)))
    return out


def render_chunk(
    chunk: bytes,
    rest: bytes,
    compiled: CompiledMapping,
    now_ms: int,
    project: Projector | None = None,
) -> bytes:
    """The output of the lines of `chunk + rest`: one newline-terminated line each, one join.

    `chunk` is a block of input cut anywhere and `rest` completes its last line: only that line
    is joined, not the whole chunk. Lines end at b"\n" only, as a binary file's iteration has
    them; BytesIO finds them with memchr (`bytes.split` tests byte by byte: ten times the
    instructions)."""
    lines = list(io.BytesIO(chunk))
    if rest:
        lines[-1] += rest
    out = map_lines(lines, compiled, now_ms, project)
    out.append(b"")  # the last line's newline, in the one join
    return b"\n".join(out)


def _chunks(source: IO[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """The input as (block, rest of its last line) pairs; never an empty pair."""
    while block := source.read(CHUNK_BYTES):
        yield block, b"" if block.endswith(b"\n") else source.readline()


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
    project = projector(compiled)
    chunks = _chunks(source)
    ahead = list(islice(chunks, 2))
    if not ahead:
        return
    workers = _worker_count() if workers is None else workers
    if len(ahead) < 2 or workers < 2:  # small input: no process start-up
        for chunk in chain(ahead, chunks):
            sink.write(render_chunk(*chunk, compiled, now_ms, project))
        sink.flush()
        return
    mapping = settings.model_dump(include=set(_MAPPING_KEYS))
    with ProcessPoolExecutor(
        workers, initializer=_start_worker, initargs=(mapping, now_ms)
    ) as pool:
        pending: deque[Future[bytes]] = deque()
        try:
            for chunk in chain(ahead, chunks):
                pending.append(pool.submit(_map_chunk, *chunk))
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
    compiled = _worker["compiled"] = MappingSettings.model_validate(mapping).compile()
    _worker["project"] = projector(compiled)
    tune_memory()
    _worker["now_ms"] = now_ms


def _map_chunk(chunk: bytes, rest: bytes) -> bytes:
    return render_chunk(chunk, rest, _worker["compiled"], _worker["now_ms"], _worker["project"])


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
