"""Dotted CA paths: split once at compile time, then read together in one pass per event.

Every field of the mapping reads one or more paths, and most share prefixes (`context.device.*`,
`user.*`). A `PathReader` reads all the paths of a mapping in one pass that visits each shared
prefix once, and returns their values as a tuple the fields index into.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

Path = tuple[str, ...]

# Reading a field: indexes into the values a reader returned, each with its conversion to the
# output value (None = unusable, so the next source of the chain is tried).
Chain = tuple[tuple[int, Callable[[object], object]], ...]

ITEM_PREFIX = "items.X."


def split_path(dotted: str) -> Path | None:
    """`context.page.url` → `("context", "page", "url")`; None when a segment is empty."""
    parts = tuple(dotted.split("."))
    if not all(part and part == part.strip() for part in parts):
        return None
    return parts


def _is_interpreted() -> bool:
    return isinstance(_is_interpreted, types.FunctionType)


# Built with mypyc (`CAPI_CONSUMER_MYPYC=1`), the readers run as native loops over tables;
# interpreted, generated straight-line code is faster (both give the same values).
COMPILED: Final = not _is_interpreted()


def get_path(value: object, path: Path) -> object:
    """The value at `path`, walking objects only; None when any step is missing."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class PathReader:
    """Reads a fixed set of paths from one object; JSON null and absent both read as None.

    `read(event)[reader.index[path]]` equals `get_path(event, path)`. The reader is generated
    Python source (one `dict.get` per path segment, shared prefixes once, each step's object
    checked to be a dict): about twice as fast as walking a tree of the paths, and this runs for
    every event and every item. Keys enter the source only through `repr`.

    With `outputs` (a list of source chains), `read` instead returns one value per chain: the
    first of its paths that is not None. The caller then unpacks its fields from the tuple in
    one step, with no index lookups and no loops over chains. `select` does the same from the
    values of every path, in `index` order (what a projecting decoder produces).

    Compiled by mypyc, `read` and `select` are instead `_TreeReader`'s loops over tables (native
    code; `exec`-generated code would stay interpreted there).
    """

    __slots__ = ("index", "read", "select", "source", "tree")

    def __init__(
        self, paths: Iterable[Path], outputs: Sequence[Sequence[Path]] | None = None
    ) -> None:
        self.index: dict[Path, int] = {}
        for path in paths:
            self.index.setdefault(path, len(self.index))
        for chain in outputs or ():
            for path in chain:
                self.index.setdefault(path, len(self.index))
        self.source = self._generate(outputs)
        # Compiled: the native reader, for callers to call its methods directly.
        self.tree: _TreeReader | None = None
        if COMPILED:
            tree = self.tree = _TreeReader(list(self.index), outputs, self.index)
            self.read: Callable[[object], tuple[Any, ...]] = tree.read
            self.select: Callable[[tuple[Any, ...]], tuple[Any, ...]] = (
                tree.select if outputs is not None else tuple
            )
            return
        if outputs is not None:
            selected = [
                self._first_of([f"values[{self.index[path]}]" for path in chain])
                for chain in outputs
            ]
            self.source += (
                f"\ndef select(values):\n    return ({''.join(s + ', ' for s in selected)})"
            )
        namespace: dict[str, Any] = {}
        exec(compile(self.source, "<PathReader>", "exec"), namespace)
        self.read = namespace["read"]
        self.select = namespace.get("select", tuple)

    def _generate(self, outputs: Sequence[Sequence[Path]] | None) -> str:
        names = [f"v{index}" for index in range(len(self.index))]
        lines = ["def read(node0):"]
        if names:
            lines.append(f"    {' = '.join(names)} = None")
            lines.append("    if isinstance(node0, dict):")
            self._emit(list(self.index), 0, lines)
        if outputs is None:
            returned = names
        else:
            returned = [
                self._first_of([f"v{self.index[path]}" for path in chain]) for chain in outputs
            ]
        lines.append(f"    return ({''.join(name + ', ' for name in returned)})")
        return "\n".join(lines)

    @staticmethod
    def _first_of(names: list[str]) -> str:
        """An expression: the first of `names` that is not None (None when all are)."""
        expression = names[-1] if names else "None"
        for name in reversed(names[:-1]):
            expression = f"({name} if {name} is not None else {expression})"
        return expression

    def _emit(self, paths: list[Path], depth: int, lines: list[str]) -> None:
        pad = "    " * (depth + 2)
        node = f"node{depth}"
        for key in dict.fromkeys(path[depth] for path in paths):
            below = [path for path in paths if path[depth] == key]
            ending = [path for path in below if len(path) == depth + 1]
            deeper = [path for path in below if len(path) > depth + 1]
            if not deeper:
                lines.append(f"{pad}v{self.index[ending[0]]} = {node}.get({key!r})")
                continue
            child = f"node{depth + 1}"
            lines.append(f"{pad}{child} = {node}.get({key!r})")
            if ending:
                lines.append(f"{pad}v{self.index[ending[0]]} = {child}")
            lines.append(f"{pad}if isinstance({child}, dict):")
            self._emit(deeper, depth + 1, lines)


class _TreeReader:
    """`PathReader.read` and `select` as loops over tables, for mypyc to compile natively.

    `steps` visit each shared prefix once, parents before children: (node, key, slot, child)
    reads `key` of node register `node`, stores it at `slot` (-1: none) and, when it is a dict,
    in node register `child` (-1: none)."""

    def __init__(
        self,
        paths: list[Path],
        outputs: Sequence[Sequence[Path]] | None,
        index: dict[Path, int],
    ) -> None:
        self.size = len(index)
        nodes: dict[Path, int] = {(): 0}
        steps: list[tuple[int, str, int, int]] = []
        for depth in range(max((len(path) for path in paths), default=0)):
            for path in paths:
                if len(path) <= depth or path[: depth + 1] in nodes:
                    continue
                prefix = path[: depth + 1]
                deeper = any(len(p) > depth + 1 and p[: depth + 1] == prefix for p in paths)
                child = len(nodes) if deeper else -1
                if deeper:
                    nodes[prefix] = child
                steps.append((nodes[path[:depth]], path[depth], index.get(prefix, -1), child))
        self.steps = steps
        self.registers = len(nodes)
        self.outputs: list[list[int]] = [
            [index[path] for path in chain] for chain in (outputs or ())
        ]
        self.has_outputs = outputs is not None

    def read(self, event: object) -> tuple[Any, ...]:
        values: list[Any] = [None] * self.size
        nodes: list[dict[Any, Any] | None] = [None] * self.registers
        if isinstance(event, dict):
            nodes[0] = event
            for node_index, key, slot, child in self.steps:
                node = nodes[node_index]
                if node is None:
                    continue
                value = node.get(key)
                if slot >= 0:
                    values[slot] = value
                if child >= 0 and isinstance(value, dict):
                    nodes[child] = value
        if self.has_outputs:
            return self.select(tuple(values))
        return tuple(values)

    def select(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        selected: list[Any] = []
        for chain in self.outputs:
            found = None
            for slot in chain:
                found = values[slot]
                if found is not None:
                    break
            selected.append(found)
        return tuple(selected)


def pick(values: tuple[Any, ...], chain: Chain) -> Any:
    """The first usable value of a source chain."""
    for index, convert in chain:
        raw = values[index]
        if raw is not None:
            converted = convert(raw)
            if converted is not None:
                return converted
    return None
