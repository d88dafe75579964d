"""Budgets for untrusted input: what a registered writer schema or a message may cost.

Writer schemas come from a registry other teams register into, and bytes from any producer:
neither may make preparing a schema or decoding one message cost more than a fraction of a
second or a few tens of MB.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from consumer.avro.framing import BodyDecoder, Record
from consumer.avro.programs import AMPLIFIED_OBJECTS, OPCODES, Compiled

_MAX_SCHEMA_BYTES: Final = 64 * 1024
_MAX_SCHEMA_DEPTH: Final = 32
_MAX_FIXED_SIZE: Final = 1024 * 1024
# Values one datum builds outside its arrays and maps (a record of records that each use a
# named record twice doubles at every level: depth alone does not bound it).
MAX_DATUM_OBJECTS: Final = 100_000
# Sample records (the readers' self-checks) only when 32 of them cost less than this many
# objects or 64-byte units; otherwise the check is skipped and fastavro reads the schema.
MAX_SAMPLE_COST: Final = 100_000


def writer_schema_problem(text: str, schema: Any) -> str | None:
    """Why a registered writer schema is refused before anything else is done with it, or None.

    Checked on the JSON alone: the size of its text, how deeply its types nest (records,
    arrays, maps, unions), the size of its `fixed` types."""
    if len(text.encode()) > _MAX_SCHEMA_BYTES:
        return f"the schema is larger than {_MAX_SCHEMA_BYTES // 1024} KiB"
    # Depth-first with an explicit stack: the JSON itself may nest deeper than Python recurses.
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, list):
            depth += 1
            stack.extend((branch, depth) for branch in node)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in ("record", "error", "array", "map"):
                depth += 1
            if kind == "fixed":
                size = node.get("size")
                if isinstance(size, int) and size > _MAX_FIXED_SIZE:
                    return f"a fixed type is larger than {_MAX_FIXED_SIZE // 1024 // 1024} MiB"
            children = [node.get("items"), node.get("values")]
            if isinstance(kind, (dict, list)):
                children.append(kind)
            fields = node.get("fields")
            if isinstance(fields, list):
                children.extend(f.get("type") for f in fields if isinstance(f, dict))
            stack.extend((child, depth) for child in children if child is not None)
        if depth > _MAX_SCHEMA_DEPTH:
            return f"its types nest deeper than {_MAX_SCHEMA_DEPTH}"
    return None


def prescanner(compiled: Compiled) -> Callable[[bytes, int], None] | None:
    """A check of a message's block counts against the bytes left and the per-message objects
    budget, run before cavro or fastavro decode it (they trust a count: an array of 2^56 nulls
    loops for ever or exhausts memory). The compiled reader checks the same as it reads.

    None when no message needs it: items that take at least as many bytes as the objects they
    build are bounded by the bytes. Otherwise messages too short to exceed the budget (the
    project's events, with their items) skip the walk too.
    """
    ratio = 0.0  # the most charged objects per byte of message
    seen: set[int] = set()
    stack = [compiled.program]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node[0] in (OPCODES["array"], OPCODES["map"]):
            if node[3]:
                ratio += node[3] / node[2] if node[2] else float("inf")
            stack.append(node[1])
        elif node[0] == OPCODES["record"]:
            stack.extend(node[2])
        elif node[0] == OPCODES["union"]:
            stack.extend(node[1])
    if not ratio:
        return None
    free_bytes = int(AMPLIFIED_OBJECTS / ratio)
    program = compiled.program

    def prescan(value: bytes, start: int) -> None:
        if len(value) - start > free_bytes:
            Scan(value, start).node(program)

    return prescan


class Scan:
    """Walks an Avro body as the compiled reader does, building nothing: checks only what
    bounds the work (lengths, block counts, union indexes), and charges items as it does.
    Raises ValueError, as that reader does: the same dead letter whichever reader is in use."""

    def __init__(self, value: bytes, start: int) -> None:
        self._value, self._pos, self._end = value, start, len(value)
        self._objects_left = AMPLIFIED_OBJECTS

    def long(self) -> int:
        value, shift, data = 0, 0, self._value
        while self._pos < self._end and shift < 70:
            byte = data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (value >> 1) ^ -(value & 1)
            shift += 7
        raise ValueError("truncated or overlong varint")

    def skip(self, size: int) -> None:
        if size < 0 or size > self._end - self._pos:
            raise ValueError("length past the end of the input")
        self._pos += size

    def node(self, node: tuple[Any, ...]) -> None:
        op = node[0]
        if op in (OPCODES["long"], OPCODES["enum"]):
            self.long()
        elif op in (OPCODES["bytes"], OPCODES["string"]):
            self.skip(self.long())
        elif op in (OPCODES["boolean"], OPCODES["float"], OPCODES["double"]):
            self.skip({1: 1, 3: 4, 4: 8}[op])
        elif op == OPCODES["fixed"]:
            self.skip(node[1])
        elif op == OPCODES["record"]:
            for field in node[2]:
                self.node(field)
        elif op == OPCODES["union"]:
            index = self.long()
            if not 0 <= index < len(node[1]):
                raise ValueError("union index out of range")
            self.node(node[1][index])
        elif op in (OPCODES["array"], OPCODES["map"]):
            self.blocks(node, is_map=op == OPCODES["map"])

    def blocks(self, node: tuple[Any, ...], is_map: bool) -> None:
        item, min_bytes, charge = node[1], max(node[2], int(is_map)), node[3]
        while count := self.long():
            if count < 0:
                count = -count
                if self.long() < 0:  # the block's size in bytes: read, not trusted
                    raise ValueError("negative block size")
            if min_bytes and count > (self._end - self._pos) // min_bytes:
                raise ValueError("block count past the end of the input")
            charge = charge or (0 if min_bytes else 1)
            if charge:
                if count * charge > self._objects_left:
                    raise ValueError("too many objects for the input")
                self._objects_left -= count * charge
            for _ in range(count):
                if is_map:
                    self.skip(self.long())
                self.node(item)


def guarded(decode: BodyDecoder, prescan: Callable[[bytes, int], None] | None) -> BodyDecoder:
    if prescan is None:
        return decode

    def guarded(value: bytes, start: int) -> Record:
        prescan(value, start)
        return decode(value, start)

    return guarded
