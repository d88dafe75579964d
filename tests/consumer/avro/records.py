"""Comparing decoded records with the events that were encoded; which readers are built."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson

from consumer.avro import decoding


def native_reader_built() -> bool:
    """Is the compiled Avro reader importable? Where REQUIRE_NATIVE_AVRO_READER is set (CI, which
    has a C compiler), a missing one is an error, not a skip."""
    if decoding._native_available():
        return True
    if os.environ.get("REQUIRE_NATIVE_AVRO_READER"):
        raise RuntimeError("the compiled Avro reader (consumer/avro/_avro_reader.c) was not built")
    return False


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


def memory_kept(churn: Callable[[], None]) -> int:
    """Bytes still allocated after two more runs of `churn` (after a warm-up of caches and free
    lists): what it leaks."""
    churn()
    tracemalloc.start()
    try:
        churn()
        before = tracemalloc.get_traced_memory()[0]
        churn()
        churn()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def zigzag(number: int) -> bytes:
    """An Avro long (a zigzag varint): counts, lengths and indexes in hand-made bodies."""
    encoded = (number << 1) ^ (number >> 63)
    out = bytearray()
    while True:
        byte = encoded & 0x7F
        encoded >>= 7
        if not encoded:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)
