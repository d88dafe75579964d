"""The compiled reader's programs: an Avro schema as nested tuples of opcodes
(consumer/avro/_avro_reader.c runs them), with what bounds the work of reading one datum."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Final

# The compiled reader's opcodes (consumer/avro/_avro_reader.c).
OPCODES: Final = {
    "null": 0, "boolean": 1, "int": 2, "long": 2, "float": 3, "double": 4, "bytes": 5,
    "string": 6, "record": 7, "enum": 8, "array": 9, "map": 10, "union": 11, "fixed": 12,
}  # fmt: skip
_MIN_BYTES: Final = {"null": 0, "float": 4, "double": 8}


class NotCompilable(ValueError):
    """A schema the compiled reader does not take (recursive, logical types): use another."""


# Items that build more objects than they take bytes are charged against this many objects per
# message (the compiled reader's MAX_AMPLIFIED_OBJECTS; `_prescan` for the other readers).
AMPLIFIED_OBJECTS: Final = 250_000


@dataclass(frozen=True, slots=True)
class Compiled:
    """A schema node compiled: the reader's program, the fewest bytes a datum takes, and the
    most objects (values, record entries) reading one builds, outside its arrays and maps."""

    program: tuple[Any, ...]
    min_bytes: int
    objects: int
    # The objects and 64-byte units of a random datum as fastavro's generate_many makes it
    # (arrays and maps of 10 items): whether sample records of the schema can be afforded.
    sample_cost: int


def _charge(item: Compiled, overhead: int = 0) -> int:
    """What each item of an array (map: overhead 1, the key) charges against the per-message
    objects budget: its objects when they outnumber its bytes (a null item takes none), else 0."""
    objects, min_bytes = item.objects + overhead, item.min_bytes + overhead
    return objects if objects > min_bytes or min_bytes == 0 else 0


def compile_schema(schema: Any, logical_as_base: bool = False) -> Compiled:
    """An Avro schema compiled (`NotCompilable` when the compiled reader cannot read it).

    `logical_as_base`: logical types compile as their underlying type (for `prescanner`, which
    only walks the bytes), instead of `NotCompilable`.
    """
    named: dict[str, Compiled] = {}
    defining: set[str] = set()

    def full_name(name: str, namespace: str) -> str:
        return name if "." in name or not namespace else f"{namespace}.{name}"

    def compile_node(node: Any, namespace: str) -> Compiled:
        if isinstance(node, list):
            branches = [compile_node(branch, namespace) for branch in node]
            return Compiled(
                (OPCODES["union"], tuple(branch.program for branch in branches)),
                1 + min((branch.min_bytes for branch in branches), default=0),
                max((branch.objects for branch in branches), default=1),
                max((branch.sample_cost for branch in branches), default=1),
            )
        if isinstance(node, str):
            if node in OPCODES and node not in {"record", "enum", "array", "map", "union"}:
                return Compiled((OPCODES[node],), _MIN_BYTES.get(node, 1), 1, 1)
            # A bare name means the one in the enclosing namespace first (fastavro, the spec),
            # even when a type of that name exists without a namespace.
            name = full_name(node, namespace)
            if name not in named and name not in defining:
                name = node
            if name in defining:
                raise NotCompilable("recursive schema")
            if name not in named:
                raise NotCompilable(f"unknown type {node}")
            return named[name]
        if not isinstance(node, dict) or ("logicalType" in node and not logical_as_base):
            raise NotCompilable("logical types are converted by fastavro")
        kind = node.get("type")
        if kind in {"record", "error", "enum", "fixed"}:
            namespace = node.get("namespace", namespace)
            name = full_name(node["name"], namespace)
            namespace = name.rpartition(".")[0]
            defining.add(name)
            if kind == "enum":
                compiled = Compiled((OPCODES["enum"], tuple(node["symbols"])), 1, 1, 1)
            elif kind == "fixed":
                size = int(node["size"])
                compiled = Compiled((OPCODES["fixed"], size), size, 1, 1 + size // 64)
            else:
                fields = [compile_node(field["type"], namespace) for field in node["fields"]]
                names = tuple(sys.intern(field["name"]) for field in node["fields"])
                compiled = Compiled(
                    (OPCODES["record"], names, tuple(field.program for field in fields)),
                    sum(field.min_bytes for field in fields),
                    max(1, sum(field.objects for field in fields)),
                    1 + sum(field.sample_cost for field in fields),
                )
            defining.discard(name)
            named[name] = compiled
            return compiled
        if kind == "array":
            item = compile_node(node["items"], namespace)
            program = (OPCODES["array"], item.program, item.min_bytes, _charge(item))
            return Compiled(program, 1, 1, 1 + 10 * item.sample_cost)
        if kind == "map":
            value = compile_node(node["values"], namespace)
            program = (OPCODES["map"], value.program, 1 + value.min_bytes, _charge(value, 1))
            return Compiled(program, 1, 1, 1 + 10 * (1 + value.sample_cost))
        return compile_node(kind, namespace)

    return compile_node(schema, "")


def program(schema: Any) -> tuple[tuple[Any, ...], int]:
    """The compiled reader's program for an Avro schema, and the fewest bytes a datum takes."""
    compiled = compile_schema(schema)
    return compiled.program, compiled.min_bytes
