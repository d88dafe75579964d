"""Random JSON lines for `map`'s JSON reader (consumer/cli/_json_values.c), and what it must
give for them: the tests and `make fuzz` share these.

The lines are written as text, not by a serializer, so that they hold what serializers never
write but producers' lines may: escapes of every kind, surrogate pairs and lone surrogates,
keys given twice, whitespace anywhere, numbers at the edges of their ranges, deep nesting,
non-objects; `mutate` then breaks them byte by byte.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from consumer.avro.projection import reference_values
from transforms import CompiledMapping
from transforms.paths import PathReader

# Keys the default mapping reads, so that generated lines hit its paths at every depth.
KEYS = [
    *("event_name", "context", "user", "items", "event_id", "event_timestamp", "page", "url"),
    *("device", "cookie", "ip", "user_agent", "email", "phone", "id", "value", "currency"),
    *("partners", "openai", "oppref", "product", "quantity", "price", "consent_categories"),
    *("title", "other", "é", "a\u00e9b"),
]
_STRINGS = ["", "x", "purchase", "a@b.co", "https://shop.example/p?q=1", "é中😀", " pad "]
_ESCAPES = [r"\"", r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t", r"\u00e9", r"\u0041"]
_ODD_ESCAPES = [r"\ud83d\ude00", r"\ud800", r"\udc00x", r"\u12", r"\x", "\\"]
_NUMBERS = [
    *("0", "-0", "1", "-1", "42", "129.99", "-0.0", "1e2", "1E-2", "2.5e+3", "1773892900000"),
    *("999999999999999999", "-999999999999999999", "1000000000000000000", "1e308", "1e309"),
    *("4.9e-324", "1e-400", "0.1000000000000000055511151231257827", "01", "1.", ".5", "-"),
]
_SPACE = ["", "", "", " ", "\n", "\t", "\r\n  "]


def _string(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randrange(4)):
        pick = rng.random()
        if pick < 0.6:
            parts.append(rng.choice(_STRINGS))
        elif pick < 0.9:
            parts.append(rng.choice(_ESCAPES))
        else:
            parts.append(rng.choice(_ODD_ESCAPES))
    return '"' + "".join(parts) + '"'


def _key(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return rng.choice(['"ev\\u0065nt_name"', '"us\\u0065r"', '"\\u00e9"'])
    return '"' + rng.choice(KEYS) + '"'


def value(rng: random.Random, depth: int = 0) -> str:
    """A JSON value's text (sometimes not quite JSON)."""
    space = rng.choice(_SPACE)
    pick = rng.random() if depth < 6 else rng.random() * 0.5
    if pick < 0.2:
        text = _string(rng)
    elif pick < 0.35:
        text = rng.choice(_NUMBERS)
    elif pick < 0.45:
        text = rng.choice(["true", "false", "null", "nul", "True"])
    elif pick < 0.6:
        text = "[" + ",".join(value(rng, depth + 1) for _ in range(rng.randrange(4))) + "]"
    else:
        members = [
            f"{_key(rng)}{rng.choice(_SPACE)}:{value(rng, depth + 1)}"
            for _ in range(rng.randrange(6))
        ]
        text = "{" + ",".join(members) + "}"
    return space + text + space


def line(rng: random.Random) -> bytes:
    """A line: most often an object, sometimes nested past the reader's depth."""
    if rng.random() < 0.02:
        depth = rng.choice([255, 256, 257, 1100])
        return ('{"context":' * depth + "1" + "}" * depth).encode()
    if rng.random() < 0.1:
        text = value(rng)  # any value: often not an object
    else:
        members = [f"{_key(rng)}:{value(rng, 1)}" for _ in range(rng.randrange(1, 10))]
        text = "{" + ",".join(members) + "}"
    return text.encode("utf-8", "surrogatepass")


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A few bytes changed, deleted or inserted (JSON's own punctuation most often)."""
    mutable = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not mutable:
            break
        index = rng.randrange(len(mutable))
        pick = rng.random()
        if pick < 0.4:
            mutable[index] = rng.randrange(256)
        elif pick < 0.7:
            del mutable[index]
        else:
            mutable.insert(index, rng.choice(b'{}[]",:\\0123456789eE.-+ tfnul\x80\xc3\xed'))
    return bytes(mutable)


def reference(compiled: CompiledMapping, data: bytes) -> Any:
    """What the JSON reader must give for `data` when it does not decline it: orjson's event
    read at the mapping's paths (the item list's objects as tuples), as `map_values` takes it.
    None when orjson does not give an object."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    values = reference_values(
        PathReader(list(compiled.event_reader.index)),
        compiled.items,
        PathReader(list(compiled.item_reader.index)),
    )
    return values(event)


def disagreement(project: Any, compiled: CompiledMapping, data: bytes) -> str | None:
    """Why the reader's answer for `data` is wrong, or None. Compared by repr: unlike ==, it
    tells 1 from 1.0 and True from 1."""
    got = project(data)
    if got is None:
        return None
    expected = reference(compiled, data)
    if repr(got) != repr(expected):
        return f"read {got!r}, orjson gives {expected!r}"
    return None
