"""A mapping's values read straight from a JSON line (consumer/cli/_json_values.c), for `map`.

`projector(compiled)(line)` is what `orjson.loads(line)` then reading the mapping's paths gives
(`map_values` takes it), without building the line's tree; or None when the reader leaves the
line to that reference way (see the C file's header). None instead of a projector when the C
extension was not built or the paths do not fit it (a path that is also the start of another).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from consumer.avro.projection import PathTrie, path_trie
from transforms import CompiledMapping

if TYPE_CHECKING:  # the extension is optional; the stub has its types
    from consumer.cli._json_values import Node

Path = tuple[str, ...]
Projector = Callable[[bytes], "tuple[Any, ...] | None"]


class _Unfit(ValueError):
    pass


def tree(paths: Sequence[Path], items_slot: int | None = None) -> Node:
    """The C reader's node for `paths` (slot = index in `paths`)."""

    def node(trie: PathTrie) -> Node:
        entries = []
        for key, ((slot,), below) in trie.items():
            if slot is not None and below:
                raise _Unfit("a path is also the start of another")
            child = node(below) if below else None
            stored = -1 if slot is None else slot
            entries.append((key, stored, slot is not None and slot == items_slot, child))
        return tuple(entries)

    return node(path_trie(paths))


def projector(compiled: CompiledMapping) -> Projector | None:
    try:
        from consumer.cli._json_values import Projector as NativeProjector
    except ImportError:
        return None
    paths = list(compiled.event_reader.index)
    item_paths = list(compiled.item_reader.index)
    try:
        native: Projector = NativeProjector(
            tree(paths, compiled.items), len(paths), tree(item_paths), len(item_paths)
        )
    except ValueError:  # _Unfit, or more keys under one object than the reader tells apart
        return None
    return native
