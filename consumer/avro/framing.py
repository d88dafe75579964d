"""Confluent framing and what travels around the Avro body.

A record value is either a plain Avro body, or Confluent's wire format: magic byte 0, a 4-byte
big-endian schema id, then the body. Properties the schema does not name (and values whose type
does not fit their field) travel in the `extra_properties` map, keyed by their JSON Pointer
(RFC 6901) in the CA event, valued by their JSON text; decoding puts them back in place.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import orjson

EXTRA_FIELD: Final = "extra_properties"
MAGIC_BYTE: Final = 0
HEADER: Final = struct.Struct(">BI")

Record = dict[str, Any]
_T = TypeVar("_T")
# (message bytes, offset of the Avro body) -> record; raises on any malformed input.
BodyDecoder = Callable[[bytes, int], Record]


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """A message whose bytes cannot be decoded; `message` never holds payload content."""

    reason: str
    message: str


def undecodable(message: str) -> DecodeFailure:
    return DecodeFailure(reason="undecodable", message=message)


NO_VALUE: Final = undecodable("the record has no value")
NOT_CONFLUENT: Final = undecodable(
    "not in Confluent wire format (expected magic byte 0 and a 4-byte schema id)"
)
_BAD_EXTRAS: Final = undecodable(f"malformed {EXTRA_FIELD} entry")


class TrailingBytesError(ValueError):
    pass


def read_body(body: Callable[[bytes, int], _T], value: bytes, start: int) -> _T | DecodeFailure:
    try:
        return body(value, start)
    except TrailingBytesError:
        return undecodable("bytes left over after the Avro record")
    # Malformed input makes the Avro readers raise many kinds of errors (EOFError, ValueError,
    # UnicodeDecodeError, IndexError, ...): each one means "undecodable".
    except Exception as exc:
        return undecodable(f"Avro decode error ({type(exc).__name__})")


def put_back_extras(event: Record) -> Record | DecodeFailure:
    extras = event.pop(EXTRA_FIELD, None)
    if extras:
        try:
            for pointer, text in extras.items():
                _set_at_pointer(event, POINTERS.get(pointer) or parse_pointer(pointer), text)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return _BAD_EXTRAS
    return event


# Producers use a handful of pointers over and over: parse each once (bounded, for safety).
POINTERS: dict[str, tuple[list[str], str]] = {}
MAX_POINTERS: Final = 10_000


def parse_pointer(pointer: str) -> tuple[list[str], str]:
    if not pointer.startswith("/"):
        raise ValueError("not a JSON Pointer")
    *parents, last = (_unescape(token) for token in pointer[1:].split("/"))
    if len(POINTERS) >= MAX_POINTERS:
        POINTERS.clear()
    parsed = POINTERS[pointer] = (parents, last)
    return parsed


def _set_at_pointer(event: Record, pointer: tuple[list[str], str], text: str) -> None:
    parents, last = pointer
    node: Any = event
    for token in parents:
        if isinstance(node, list):
            node = node[int(token)]
            continue
        child = node.get(token)
        if child is None:
            child = node[token] = {}
        node = child
    if isinstance(node, list):
        node[int(last)] = orjson.loads(text)
    else:
        node[last] = orjson.loads(text)


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1") if ("~" in token or "/" in token) else token


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~") if "~" in token else token
