"""The compiled reader's programs: an Avro schema as nested tuples of opcodes
(consumer/avro/_avro_reader.c runs them)."""

from __future__ import annotations

import sys
from typing import Any, Final

# The compiled reader's opcodes (consumer/avro/_avro_reader.c).
OPCODES: Final = {
    "null": 0, "boolean": 1, "int": 2, "long": 2, "float": 3, "double": 4, "bytes": 5,
    "string": 6, "record": 7, "enum": 8, "array": 9, "map": 10, "union": 11, "fixed": 12,
}  # fmt: skip
_MIN_BYTES: Final = {"null": 0, "float": 4, "double": 8}


class NotCompilable(ValueError):
    """A schema the compiled reader does not take (recursive, logical types): use another."""


def program(schema: Any) -> tuple[tuple[Any, ...], int]:
    """The compiled reader's program for an Avro schema, and the fewest bytes a datum takes."""
    named: dict[str, tuple[tuple[Any, ...], int]] = {}
    defining: set[str] = set()

    def full_name(name: str, namespace: str) -> str:
        return name if "." in name or not namespace else f"{namespace}.{name}"

    def compile_node(node: Any, namespace: str) -> tuple[tuple[Any, ...], int]:
        if isinstance(node, list):
            branches = [compile_node(branch, namespace) for branch in node]
            smallest = min((size for _, size in branches), default=0)
            return (OPCODES["union"], tuple(program for program, _ in branches)), 1 + smallest
        if isinstance(node, str):
            if node in OPCODES and node not in {"record", "enum", "array", "map", "union"}:
                return (OPCODES[node],), _MIN_BYTES.get(node, 1)
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
        if not isinstance(node, dict) or "logicalType" in node:
            raise NotCompilable("logical types are converted by fastavro")
        kind = node.get("type")
        if kind in {"record", "error", "enum", "fixed"}:
            namespace = node.get("namespace", namespace)
            name = full_name(node["name"], namespace)
            namespace = name.rpartition(".")[0]
            defining.add(name)
            if kind == "enum":
                compiled: tuple[tuple[Any, ...], int] = (
                    (OPCODES["enum"], tuple(node["symbols"])),
                    1,
                )
            elif kind == "fixed":
                compiled = (OPCODES["fixed"], int(node["size"])), int(node["size"])
            else:
                fields = [compile_node(field["type"], namespace) for field in node["fields"]]
                names = tuple(sys.intern(field["name"]) for field in node["fields"])
                compiled = (
                    (OPCODES["record"], names, tuple(program for program, _ in fields)),
                    sum(size for _, size in fields),
                )
            defining.discard(name)
            named[name] = compiled
            return compiled
        if kind == "array":
            item, size = compile_node(node["items"], namespace)
            return (OPCODES["array"], item, size), 1
        if kind == "map":
            value, size = compile_node(node["values"], namespace)
            return (OPCODES["map"], value, 1 + size), 1
        return compile_node(kind, namespace)

    return compile_node(schema, "")
