"""`capi-consumer map --diff NEW_CONFIG [--config OLD_CONFIG]`: what a mapping change changes.

Each input line is mapped with both configurations and the same `now`; one JSON line per input
line whose output differs (`{"line", "id", "changes"}`), then a summary object on stderr.
A change of outcome (event, skip, error) is one change at path `""` holding both output lines.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import IO, Any, Final

import orjson

from consumer.cli.map import outcome_json
from consumer.cli.startup import load_or_exit
from consumer.exit_codes import EXIT_OK
from transforms import CompiledMapping, MappingSettings, map_event

_INVALID_JSON: Final = {
    "error": {"code": "invalid_json", "field": "", "message": "the line is not valid JSON"}
}
_INDEX: Final = re.compile(r"\[\d+\]")
_NOT_JSON: Final = object()


def _output(event: Any, compiled: CompiledMapping, now_ms: int) -> dict[str, Any]:
    if event is _NOT_JSON:
        return _INVALID_JSON
    return outcome_json(map_event(event, compiled, now_ms))


def _kind(output: dict[str, Any]) -> str:
    if "skipped" in output and len(output) == 1:
        return "skipped"
    if "error" in output and len(output) == 1:
        return "error"
    return "event"


def _same(old: Any, new: Any) -> bool:
    """Equal as JSON: `1`, `1.0` and `true` differ."""
    return type(old) is type(new) and old == new


def changes(old: Any, new: Any, path: str = "") -> Iterator[dict[str, Any]]:
    """The differing leaves of two JSON values; a side where a path is absent has no key."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            child = f"{path}.{key}" if path else str(key)
            if key not in new:
                yield {"path": child, "old": old[key]}
            elif key not in old:
                yield {"path": child, "new": new[key]}
            else:
                yield from changes(old[key], new[key], child)
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            child = f"{path}[{index}]"
            if index >= len(new):
                yield {"path": child, "old": old[index]}
            elif index >= len(old):
                yield {"path": child, "new": new[index]}
            else:
                yield from changes(old[index], new[index], child)
    elif not _same(old, new):
        yield {"path": path, "old": old, "new": new}


def line_diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    if _kind(old) != _kind(new):
        return [{"path": "", "old": old, "new": new}]
    return list(changes(old, new))


def diff_lines(
    lines: Iterable[bytes],
    old: MappingSettings,
    new: MappingSettings,
    now_ms: int,
    sink: IO[bytes],
) -> dict[str, Any]:
    """Write one line per differing input line to `sink`; return the summary."""
    old_compiled, new_compiled = old.compile(), new.compile()
    by_path: Counter[str] = Counter()
    read = changed = 0
    for number, line in enumerate(lines, start=1):
        read += 1
        try:
            event: Any = orjson.loads(line)
        except orjson.JSONDecodeError:
            event = _NOT_JSON
        old_out = _output(event, old_compiled, now_ms)
        new_out = _output(event, new_compiled, now_ms)
        found = line_diff(old_out, new_out)
        if not found:
            continue
        changed += 1
        by_path.update(_INDEX.sub("[]", change["path"]) for change in found)
        event_id = new_out.get("id") if _kind(new_out) == "event" else None
        if event_id is None and _kind(old_out) == "event":
            event_id = old_out.get("id")
        sink.write(orjson.dumps({"line": number, "id": event_id, "changes": found}) + b"\n")
    sink.flush()
    return {"lines_read": read, "lines_changed": changed, "changes_by_path": dict(by_path)}


def command(args: argparse.Namespace) -> int:
    old = load_or_exit(args.config)
    new = load_or_exit(args.diff)
    now_ms = args.now if args.now is not None else time.time_ns() // 1_000_000
    summary = diff_lines(sys.stdin.buffer, old, new, now_ms, sys.stdout.buffer)
    sys.stderr.write(orjson.dumps(summary).decode() + "\n")
    return EXIT_OK
