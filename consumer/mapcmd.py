"""`capi-consumer map`: CA events as JSON lines on stdin → one outcome line each on stdout.

Streams in chunks (never the whole input in memory): exactly one output line per input line, in
order. Exit 0 once every line was read, whatever the outcomes; 2 for a bad configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable
from itertools import islice
from typing import IO, Any, Final

import orjson

from consumer.cli import EXIT_OK, EXIT_UNEXPECTED, load_or_exit
from transforms import CompiledMapping, Failed, Mapped, Outcome, Skipped, map_event

CHUNK_LINES: Final = 1000

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


def map_stream(source: IO[bytes], sink: IO[bytes], compiled: CompiledMapping, now_ms: int) -> None:
    lines = iter(source)
    while chunk := list(islice(lines, CHUNK_LINES)):
        sink.write(b"\n".join(map_lines(chunk, compiled, now_ms)) + b"\n")
    sink.flush()


def command(args: argparse.Namespace) -> int:
    compiled = load_or_exit(args.config).compile()
    now_ms = args.now if args.now is not None else time.time_ns() // 1_000_000
    try:
        map_stream(sys.stdin.buffer, sys.stdout.buffer, compiled, now_ms)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly; point stdout at /dev/null so the
        # interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_UNEXPECTED
    return EXIT_OK
