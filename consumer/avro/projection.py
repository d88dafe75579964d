"""Projection: the compiled reader reads only the values a mapping needs, never building the
event's tree, and says when a record's extra properties would change what it read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from consumer.avro.framing import POINTERS, Record, parse_pointer
from consumer.avro.programs import OPCODES
from transforms.paths import PathReader

Path = tuple[str, ...]
Values = tuple[Any, ...]
_PROJECT, _SKIP, _STORE, _INTO_RECORD, _INTO_UNION = 13, 14, 15, 16, 17
# A path's slot (None when only deeper paths start with it), and the paths below it.
PathTrie = dict[str, tuple[list[int | None], "PathTrie"]]


class NotProjectable(ValueError):
    """Paths the projection cannot read as the whole decode would: decode whole records."""


def path_trie(paths: Sequence[Path]) -> PathTrie:
    """`paths` as a tree of their keys, each path's slot its index (the compiled readers of Avro
    and of JSON lines are built from it)."""
    root: PathTrie = {}
    for slot, path in enumerate(paths):
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, ([None], {}))[1]
        node.setdefault(path[-1], ([None], {}))[0][0] = slot
    return root


def projection(
    program: tuple[Any, ...],
    paths: Sequence[Path],
    items_slot: int | None,
    item_paths: Sequence[Path],
) -> tuple[Any, ...]:
    """The compiled reader's program (a PROJECT node, see consumer/avro/_avro_reader.c) that reads
    `paths` of a record of `program`, its item list (slot `items_slot`) as tuples of `item_paths`.

    A path reads None through anything but a record, as `PathReader` does on the decoded dict:
    so every part of the record that no path names is skipped (read and checked, never built).
    """
    if len(set(paths)) != len(paths) or len(set(item_paths)) != len(item_paths):
        raise NotProjectable("a path is given twice")
    record, union, array, map_ = (OPCODES[kind] for kind in ("record", "union", "array", "map"))

    def into(node: tuple[Any, ...], trie: PathTrie, store: Callable[..., Any]) -> tuple[Any, ...]:
        if node[0] == record:
            targets = []
            for name, field in zip(node[1], node[2], strict=True):
                entry = trie.get(name)
                if entry is None:
                    targets.append((_SKIP, field))
                    continue
                (slot,), below = entry
                if not below:
                    assert slot is not None
                    targets.append(store(slot, field))
                elif slot is not None:
                    raise NotProjectable("a path is also the start of another")
                else:
                    targets.append(into(field, below, store))
            return (_INTO_RECORD, tuple(targets))
        if node[0] == union:
            return (_INTO_UNION, tuple(into(branch, trie, store) for branch in node[1]))
        if node[0] == map_:
            raise NotProjectable("a path goes through a map")
        return (_SKIP, node)

    def stored(slot: int, node: tuple[Any, ...]) -> tuple[Any, ...]:
        return (_STORE, slot, node)

    item_trie = path_trie(item_paths)

    def item(node: tuple[Any, ...]) -> tuple[Any, ...]:
        if node[0] == record:
            return (_PROJECT, len(item_paths), into(node, item_trie, stored))
        if node[0] == union:
            return (union, tuple(item(branch) for branch in node[1]))
        return node  # decoded whole: the mapping reads records only

    def item_list(node: tuple[Any, ...]) -> tuple[Any, ...]:
        if node[0] == array:
            return (array, item(node[1]), *node[2:])
        if node[0] == union:
            return (union, tuple(item_list(branch) for branch in node[1]))
        return node

    def stored_or_items(slot: int, node: tuple[Any, ...]) -> tuple[Any, ...]:
        return (_STORE, slot, item_list(node) if slot == items_slot else node)

    return (_PROJECT, len(paths), into(program, path_trie(paths), stored_or_items))


# Verdicts on an extra property of a projected record (see `extras_verdict`).
IGNORE: Final = -1
WHOLE: Final = -2


def _only_branch(node: tuple[Any, ...], opcode: int) -> tuple[Any, ...] | None:
    """`node` if it has this opcode, or the one non-null branch of a union that has it."""
    if node[0] == OPCODES["union"]:
        others = [branch for branch in node[1] if branch[0] != OPCODES["null"]]
        node = others[0] if len(others) == 1 else node
    return node if node[0] == opcode else None


def extras_verdict(
    pointer: str,
    program: tuple[Any, ...],
    paths: Sequence[Path],
    items_slot: int | None,
    item_paths: Sequence[Path],
) -> int:
    """Whether an extra property at `pointer` changes nothing a projection reads, and can always
    be put back in place (so the whole decode would not fail on it): `IGNORE`; or the same
    provided the record's item list has a record at index k: k; else `WHOLE`.

    Decided from the schema alone, for pointers producers repeat (`/items/0/variant`): a
    pointer that leaves the schema's records (into a list, a map, a string) could fail or not
    depending on the data, so it takes the whole decode.
    """
    record = OPCODES["record"]
    try:
        parents, last = POINTERS.get(pointer) or parse_pointer(pointer)
    except ValueError:
        return WHOLE
    tokens = [*parents, last]
    node: tuple[Any, ...] | None = program
    requested: PathTrie | None = path_trie(paths)
    verdict = IGNORE
    position = 0
    while position < len(tokens):
        token, final = tokens[position], position == len(tokens) - 1
        entry = requested.get(token) if requested is not None else None
        if entry is not None and (final or entry[0][0] not in (None, items_slot)):
            return WHOLE  # it sets a value the projection reads, or a part of one
        requested = entry[1] if entry is not None else None
        node = _only_branch(node, record) if node is not None else None
        if node is None:
            return WHOLE
        if token not in node[1]:  # not in the schema: put back into a dict of its own
            return verdict if requested is None else WHOLE
        node = node[2][node[1].index(token)]
        if entry is not None and entry[0][0] == items_slot:  # the item list: /items/<k>/...
            array = _only_branch(node, OPCODES["array"])
            index = tokens[position + 1] if position + 1 < len(tokens) else ""
            if array is None or not index.isdigit() or position + 2 >= len(tokens):
                return WHOLE
            node, requested, verdict = array[1], path_trie(item_paths), int(index)
            position += 1
        position += 1
    return verdict if requested is None else WHOLE


def reference_values(
    reader: PathReader, items_slot: int | None, item_reader: PathReader
) -> Callable[[Record], Values]:
    """What a projection must give for a decoded record (its self-check)."""

    def values(event: Record) -> Values:
        read = list(reader.read(event))
        if items_slot is not None and isinstance(read[items_slot], list):
            read[items_slot] = [
                item_reader.read(item) if isinstance(item, dict) else item
                for item in read[items_slot]
            ]
        return tuple(read)

    return values
