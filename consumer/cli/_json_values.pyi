"""Types of `map`'s JSON reader (consumer/cli/_json_values.c)."""

from typing import Any

Node = tuple[tuple[str, int, bool, "Node | None"], ...]

class Projector:
    def __init__(self, event: Node, slot_count: int, item: Node, item_slot_count: int) -> None: ...
    def __call__(self, line: bytes, /) -> tuple[Any, ...] | None: ...
