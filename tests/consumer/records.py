"""Comparing decoded records with the events that were encoded."""

from __future__ import annotations

from typing import Any

import orjson


def without_nulls(value: Any) -> Any:
    """Null and absent mean the same thing to the transform; the decoder adds nulls."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def exact(value: Any) -> bytes:
    """A comparison key that tells 1 from 1.0 and "1" (== does not); nulls equal absence."""
    return orjson.dumps(without_nulls(value), option=orjson.OPT_SORT_KEYS)
