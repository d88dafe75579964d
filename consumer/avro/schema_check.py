"""The mapping checked against the reader schema: paths no schema field can fill.

A `field_mapping` source or a routing field naming no field of the local (reader) schema is most
likely a typo (`revenu` for `revenue`): only a property outside the schema, carried in
`extra_properties`, could ever fill it. `config check` and `run` report each such path as one
line naming the dotted config key; a warning, or an error with `config check --strict`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from consumer.avro.decoding import load_local_schema
from consumer.config import AppConfig
from transforms.paths import ITEM_PREFIX

# The CA path of `data.contents` by default: item-relative paths (`items.X.<path>`) are read
# from each element of the array it names.
_DEFAULT_ITEMS = "items"


class _Schema:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.named: dict[str, Any] = {}
        self._collect(schema, "")
        self.root = schema

    def _collect(self, node: Any, namespace: str) -> None:
        if isinstance(node, list):
            for branch in node:
                self._collect(branch, namespace)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in ("record", "error", "enum", "fixed") and "name" in node:
                namespace = node.get("namespace", namespace)
                name = node["name"]
                full = name if "." in name or not namespace else f"{namespace}.{name}"
                self.named[full] = node
                self.named[full.rpartition(".")[2]] = node
            for field in node.get("fields", ()):
                self._collect(field.get("type"), namespace)
            for key in ("items", "values"):
                if key in node:
                    self._collect(node[key], namespace)
            if isinstance(kind, dict | list):
                self._collect(kind, namespace)

    def resolve(self, node: Any) -> list[Any]:
        """The concrete types `node` may hold (a union's branches, names looked up)."""
        if isinstance(node, list):
            return [t for branch in node for t in self.resolve(branch)]
        if isinstance(node, str):
            return [self.named.get(node, node)]
        if isinstance(node, dict) and isinstance(node.get("type"), dict | list):
            return self.resolve(node["type"])
        return [node]

    def fills(self, node: Any, parts: list[str]) -> bool:
        """Whether a value at `parts` below `node` can come from the schema's own fields."""
        if not parts:
            return True
        for concrete in self.resolve(node):
            if not isinstance(concrete, dict):
                continue
            kind = concrete.get("type")
            if kind in ("record", "error"):
                for field in concrete.get("fields", ()):
                    if field["name"] == parts[0] and self.fills(field["type"], parts[1:]):
                        return True
            elif kind == "map" and self.fills(concrete["values"], parts[1:]):
                return True
        return False

    def array_items(self, node: Any, parts: list[str]) -> list[Any]:
        """The element types of the arrays at `parts` below `node`."""
        if not parts:
            return [
                t["items"]
                for t in self.resolve(node)
                if isinstance(t, dict) and t.get("type") == "array"
            ]
        found: list[Any] = []
        for concrete in self.resolve(node):
            if isinstance(concrete, dict) and concrete.get("type") in ("record", "error"):
                for field in concrete.get("fields", ()):
                    if field["name"] == parts[0]:
                        found += self.array_items(field["type"], parts[1:])
        return found


def mapping_schema_problems(config: AppConfig) -> list[str]:
    """One line per configured path the reader schema cannot fill: `key: message`."""
    schema = _Schema(load_local_schema(config.schema_settings))
    name = Path(config.schema_settings.local_schema).name.removesuffix(".avsc")

    def problem(key: str, source: str) -> str:
        return (
            f"{key}: {source!r} is not a field of schema {name}; only an extra property can fill it"
        )

    items_path = config.field_mapping.get("data.contents", _DEFAULT_ITEMS).split(".")
    item_types = schema.array_items(schema.root, items_path)
    problems = []
    for field, source in config.field_mapping.items():
        if source.startswith(ITEM_PREFIX):
            relative = source.removeprefix(ITEM_PREFIX).split(".")
            if not any(schema.fills(item, relative) for item in item_types):
                problems.append(problem(f"field_mapping.{field}", source))
        elif not schema.fills(schema.root, source.split(".")):
            problems.append(problem(f"field_mapping.{field}", source))
    for index, route in enumerate(config.capi.routes):
        if not schema.fills(schema.root, route.field.split(".")):
            problems.append(problem(f"capi.routes.{index}.field", route.field))
    return problems
