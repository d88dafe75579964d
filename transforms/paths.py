"""Dotted CA paths: split once at compile time, then read together in one walk per event.

Every field of the mapping reads one or more paths, and most share prefixes (`context.device.*`,
`user.*`). A `PathReader` walks each shared prefix once per event and returns the values of all
paths as a list, so the per-event cost grows with the number of distinct path segments, not with
the number of fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Path = tuple[str, ...]

# Reading a field: indexes into the values a reader returned, each with its conversion to the
# output value (None = unusable, so the next source of the chain is tried).
Chain = tuple[tuple[int, Callable[[object], object]], ...]

ITEM_PREFIX = "items.X."

# One level of the path tree: (key, index of the value when a path ends here or -1, children).
_Level = tuple[tuple[str, int, "_Level"], ...]


def split_path(dotted: str) -> Path | None:
    """`context.page.url` → `("context", "page", "url")`; None when a segment is empty."""
    parts = tuple(dotted.split("."))
    if not all(part and part == part.strip() for part in parts):
        return None
    return parts


def get_path(value: object, path: Path) -> object:
    """The value at `path`, walking objects only; None when any step is missing."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class PathReader:
    """Reads a fixed set of paths from one object; JSON null and absent both read as None."""

    __slots__ = ("_root", "_size", "index")

    def __init__(self, paths: Iterable[Path]) -> None:
        self.index: dict[Path, int] = {}
        for path in paths:
            self.index.setdefault(path, len(self.index))
        self._size = len(self.index)
        self._root = self._level(list(self.index), 0)

    def _level(self, paths: list[Path], depth: int) -> _Level:
        keys = dict.fromkeys(path[depth] for path in paths if len(path) > depth)
        level = []
        for key in keys:
            below = [path for path in paths if len(path) > depth and path[depth] == key]
            ending = [path for path in below if len(path) == depth + 1]
            index = self.index[ending[0]] if ending else -1
            level.append((key, index, self._level(below, depth + 1)))
        return tuple(level)

    def read(self, value: object) -> list[Any]:
        values: list[Any] = [None] * self._size
        if isinstance(value, dict):
            _walk(value, self._root, values)
        return values


def _walk(node: dict[Any, Any], level: _Level, values: list[Any]) -> None:
    for key, index, children in level:
        value = node.get(key)
        if value is not None:
            if index >= 0:
                values[index] = value
            if children and isinstance(value, dict):
                _walk(value, children, values)


def pick(values: list[Any], chain: Chain) -> Any:
    """The first usable value of a source chain."""
    for index, convert in chain:
        raw = values[index]
        if raw is not None:
            converted = convert(raw)
            if converted is not None:
                return converted
    return None
