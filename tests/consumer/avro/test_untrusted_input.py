"""Untrusted input (issue 18): writer schemas from a registry others register into, and bytes
from any producer. Preparing any writer schema and decoding any message of up to 1 MiB stay
within a second of CPU and 50 MB, with each decoder; what is over the limits is undecodable
with a reason, and the next message is read as usual."""

from __future__ import annotations

import copy
import io
import json
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import fastavro
import pytest

import schemas
from consumer.avro import decoding
from consumer.avro.decoding import DecodeFailure, Decoder, Encoder
from consumer.config import SchemaSettings
from consumer.devtools.registry_stub import RegistryStub
from consumer.devtools.samples import generate_events
from tests.consumer.avro.records import native_reader_built, zigzag

NOW_MS = 1_773_892_800_000
ENGINES = ["fastavro", "cavro", *(["native"] if native_reader_built() else [])]
PROJECT_SCHEMA = schemas.load_schema(schemas.TRACKING_EVENT)
CPU_BUDGET_S = 1.0
MEMORY_BUDGET = 50 * 1024 * 1024
_T = TypeVar("_T")


def within_budget(work: Callable[[], _T]) -> _T:
    """`work()`, checked to take < 1 s of CPU (process time: robust on a busy machine) and to
    allocate < 50 MB at its peak (tracemalloc, in a second run: it slows the first down)."""
    started = time.process_time()
    result = work()
    cpu = time.process_time() - started
    tracemalloc.start()
    try:
        work()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert cpu < CPU_BUDGET_S, f"took {cpu:.2f} s of CPU"
    assert peak < MEMORY_BUDGET, f"allocated {peak / 2**20:.0f} MB at its peak"
    return result


def framed(schema_id: int, body: bytes) -> bytes:
    return struct.pack(">BI", 0, schema_id) + body


def with_fields(*fields: dict[str, Any]) -> dict[str, Any]:
    """The project schema with more fields at its end (each with a default: compatible)."""
    schema = copy.deepcopy(PROJECT_SCHEMA)
    schema["fields"].extend(fields)
    return schema


def padded(items: Any) -> dict[str, Any]:
    return with_fields({"name": "pad", "type": {"type": "array", "items": items}, "default": []})


def event_body(schema: dict[str, Any]) -> bytes:
    """A sample event written with `schema` (its added fields at their defaults, last)."""
    event = generate_events(1, seed=18, now_ms=NOW_MS)[0]
    return decoding._PlainEncoder(schema).encode(event)


def hostile_pad(schema: dict[str, Any], count: int, then: bytes = b"") -> bytes:
    """An event of `schema` whose last field, an empty array, claims `count` items."""
    body = event_body(schema)
    assert body.endswith(b"\x00")
    return body[:-1] + zigzag(count) + then


def nested(levels: int, leaf: Any = "long") -> Any:
    schema = leaf
    for level in range(levels):
        schema = {"type": "record", "name": f"L{level}", "fields": [{"name": "x", "type": schema}]}
    return schema


def local_settings(tmp_path: Path, schema: Any, engine: str) -> SchemaSettings:
    path = tmp_path / "schema.avsc"
    path.write_text(json.dumps(schema), "utf-8")
    return SchemaSettings(local_schema=str(path), decoder=engine)


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryStub]:
    with RegistryStub() as stub:
        yield stub


def registry_decoder(registry: RegistryStub, engine: str) -> Decoder:
    return Decoder(
        SchemaSettings(
            registry_url=registry.url, registry_settings={"max.retries": 0}, decoder=engine
        )
    )


# --- writer schemas: prepared within budget, or refused --------------------------------------


def nested_arrays(levels: int, leaf: Any = "long") -> Any:
    schema = leaf
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


SIX_NESTED_ARRAYS = with_fields({"name": "grid", "type": nested_arrays(6), "default": []})


def samples_at_the_limit() -> dict[str, Any]:
    """As many array fields as keep fastavro's sample records just within what is afforded:
    the costliest schema whose readers are still checked on sample records."""
    base = decoding._compile(PROJECT_SCHEMA).sample_cost
    count = (decoding._MAX_SAMPLE_COST // decoding._SELF_CHECK_RANDOM - base) // 11
    return with_fields(
        *({"name": f"a{i}", "type": nested_arrays(1), "default": []} for i in range(count))
    )


ONE_MIB_FIXED = with_fields(
    {"name": "blob", "type": ["null", {"type": "fixed", "name": "Blob", "size": 2**20}],
     "default": None}
)  # fmt: skip


@pytest.mark.timeout(120, method="thread")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "schema",
    [SIX_NESTED_ARRAYS, ONE_MIB_FIXED, padded("null"), samples_at_the_limit()],
    ids=["arrays", "fixed", "pad", "samples"],
)
def test_costly_compatible_writer_schemas_are_prepared_within_budget(
    registry: RegistryStub, engine: str, schema: dict[str, Any]
) -> None:
    """Their sample records would be huge (fastavro's: arrays of 10 arrays of 10...): they are
    read without a sample check, and their events decode."""
    schema_id = registry.register(f"costly-{engine}-value", json.dumps(schema))
    value = framed(schema_id, event_body(schema))

    def prepare_and_decode() -> Any:
        return registry_decoder(registry, engine).decode_batch([value])[0]

    decoded = within_budget(prepare_and_decode)
    assert isinstance(decoded, dict), decoded
    assert decoded["event_name"] == generate_events(1, seed=18, now_ms=NOW_MS)[0]["event_name"]


@pytest.mark.timeout(120, method="thread")
@pytest.mark.parametrize("engine", ENGINES)
def test_the_issues_small_schema_of_seven_nested_arrays_is_prepared_within_budget(
    registry: RegistryStub, engine: str
) -> None:
    """244 characters, not the project's schema: fastavro's sample records of it (arrays of
    10 arrays of 10 ...) took over 60 s before the compatibility check."""
    schema = {"type": "record", "name": "X", "fields": [{"name": "a", "type": nested_arrays(7)}]}
    schema_id = registry.register(f"arrays7-{engine}-value", json.dumps(schema))
    value = framed(schema_id, b"\x02" * 7 + b"\x00" * 7)  # one item at each level, then ends

    def prepare_and_decode() -> Any:
        return registry_decoder(registry, engine).decode_batch([value])[0]

    result = within_budget(prepare_and_decode)
    assert isinstance(result, DecodeFailure)  # it cannot be read as the project's schema
    assert result.reason == "undecodable"


def record_doubling(levels: int) -> dict[str, Any]:
    """Each level's record holds the one below twice: 2**levels values, in a few lines."""
    schema: Any = {"type": "record", "name": "D0", "fields": [{"name": "n", "type": "null"}]}
    for level in range(1, levels + 1):
        schema = {
            "type": "record",
            "name": f"D{level}",
            "fields": [{"name": "a", "type": schema}, {"name": "b", "type": f"D{level - 1}"}],
        }
    return with_fields({"name": "d", "type": ["null", schema], "default": None})


REFUSED = {
    "large": (
        with_fields({"name": "x", "type": "long", "default": 0, "doc": "x" * 70_000}),
        "the schema is larger than 64 KiB",
    ),
    "deep": (
        with_fields({"name": "x", "type": ["null", nested(33)], "default": None}),
        "its types nest deeper than 32",
    ),
    "fixed": (
        with_fields(
            {
                "name": "blob",
                "type": ["null", {"type": "fixed", "name": "B", "size": 100 << 20}],
                "default": None,
            }
        ),
        "a fixed type is larger than 1 MiB",
    ),
    "recursive": (
        with_fields(
            {
                "name": "node",
                "default": None,
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "N",
                        "fields": [{"name": "next", "type": ["null", "N"]}],
                    },
                ],
            }
        ),
        "recursive schema",
    ),
    "doubling": (record_doubling(20), "a record builds more than 100000 values"),
}


@pytest.mark.timeout(120, method="thread")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", REFUSED)
def test_writer_schemas_over_the_limits_are_refused_once_and_the_stream_goes_on(
    registry: RegistryStub, engine: str, case: str
) -> None:
    schema, why = REFUSED[case]
    refused_id = registry.register(f"refused-{case}-value", json.dumps(schema))
    good = Encoder(SchemaSettings(registry_url=registry.url)).encode(
        generate_events(1, seed=5, now_ms=NOW_MS)[0], "refused-good"
    )
    decoder = registry_decoder(registry, engine)
    hostile = framed(refused_id, b"\x00" * 64)

    first, after = within_budget(lambda: decoder.decode_batch([hostile, good]))
    assert isinstance(first, DecodeFailure)
    assert first.reason == "undecodable"
    assert first.message == f"schema id {refused_id} refused: {why}"
    assert isinstance(after, dict)
    requests = registry.requests
    (again,) = decoder.decode_batch([hostile])
    assert again == first
    assert registry.requests == requests  # the refusal is cached per schema id


def test_schemas_at_the_limits_are_not_refused() -> None:
    for schema in (nested(32), ONE_MIB_FIXED):
        text = json.dumps(schema)
        assert decoding._writer_schema_problem(text, json.loads(text)) is None
    assert decoding._writer_schema_problem(json.dumps(nested(33)), nested(33)) is not None


# --- messages: decoded or dead-lettered within budget, with each decoder ---------------------

AMPLIFYING = {
    "nulls": ("null", 2**56),
    "records of 10 nulls": (nested(1, "null") | {"fields": [
        {"name": f"n{i}", "type": "null"} for i in range(10)]}, 900_000),
    "records of 100 nulls": (nested(1, "null") | {"fields": [
        {"name": f"n{i}", "type": "null"} for i in range(100)]}, 900_000),
    "a boolean and 100 nulls": (nested(1, "null") | {"fields": [
        {"name": "b", "type": "boolean"}, *({"name": f"n{i}", "type": "null"}
                                            for i in range(100))]}, 2**20),
}  # fmt: skip


@pytest.mark.timeout(120, method="thread")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", AMPLIFYING)
def test_amplifying_block_counts_are_undecodable_within_budget_with_the_local_schema(
    tmp_path: Path, engine: str, case: str
) -> None:
    items, count = AMPLIFYING[case]
    schema = padded(items)
    decoder = Decoder(local_settings(tmp_path, schema, engine))
    assert decoder.engine == engine
    # The boolean case takes a byte per item: the message holds them (1 MiB at most).
    then = b"\x01" * min(count, 2**20 - 2048) if "boolean" in case else b""
    hostile = hostile_pad(schema, count, then)
    assert len(hostile) <= 2**20

    (result,) = within_budget(lambda: decoder.decode_batch([hostile]))
    assert isinstance(result, DecodeFailure)
    assert result.reason == "undecodable"
    assert result.message == "Avro decode error (ValueError)"  # the same with every decoder


@pytest.mark.timeout(120, method="thread")
@pytest.mark.parametrize("engine", ENGINES)
def test_the_issues_message_is_undecodable_within_budget_through_the_registry(
    registry: RegistryStub, engine: str
) -> None:
    """The project schema plus an array of nulls, and a message claiming 2^56 of them: cavro
    ran to a MemoryError, fastavro looped for ever."""
    schema = padded("null")
    schema_id = registry.register(f"pad-{engine}-value", json.dumps(schema))
    decoder = registry_decoder(registry, engine)
    good = framed(schema_id, event_body(schema))
    hostile = framed(schema_id, hostile_pad(schema, 2**56))

    results = within_budget(lambda: decoder.decode_batch([hostile, good]))
    assert isinstance(results[0], DecodeFailure)
    assert isinstance(results[1], dict)


@pytest.mark.parametrize("engine", ENGINES)
def test_many_zero_width_items_within_the_budget_decode_as_fastavro_does(
    tmp_path: Path, engine: str
) -> None:
    schema = padded("null")
    value = hostile_pad(schema, 200_000, b"\x00")  # one block of 200k nulls, then the end
    expected = fastavro.schemaless_reader(
        io.BytesIO(value), fastavro.parse_schema(copy.deepcopy(schema)), None
    )
    (decoded,) = Decoder(local_settings(tmp_path, schema, engine)).decode_batch([value])
    assert isinstance(decoded, dict)
    assert decoded["pad"] == [None] * 200_000
    assert decoded["pad"] == expected["pad"]  # type: ignore[call-overload,index]


def test_the_objects_budget_is_per_message_across_arrays(tmp_path: Path) -> None:
    """Two arrays of 150k nulls each: together over the budget of 250k objects."""
    schema = with_fields(
        *({"name": name, "type": {"type": "array", "items": "null"}, "default": []}
          for name in ("pad", "pad2"))
    )  # fmt: skip
    body = event_body(schema)
    value = body[:-2] + (zigzag(150_000) + b"\x00") * 2
    for engine in ENGINES:
        (result,) = Decoder(local_settings(tmp_path, schema, engine)).decode_batch([value])
        assert isinstance(result, DecodeFailure), engine


# --- a local schema too deep for a projection -------------------------------------------------


def test_a_local_schema_63_records_deep_falls_back_instead_of_failing(tmp_path: Path) -> None:
    """The compiled reader takes it, but a projection nests deeper than the reader allows:
    the projector says None (whole records), it does not raise."""
    if "native" not in ENGINES:
        pytest.skip("the compiled reader was not built")
    schema = {
        "type": "record",
        "name": "Top",
        "fields": [{"name": "event_name", "type": "string"}, {"name": "deep", "type": nested(62)}],
    }
    decoder = Decoder(local_settings(tmp_path, schema, "auto"))
    assert decoder.engine == "native"
    assert decoder.projector([("event_name",)], None, []) is None
    datum: Any = 7
    for _ in range(62):
        datum = {"x": datum}
    stream = io.BytesIO()
    fastavro.schemaless_writer(
        stream, fastavro.parse_schema(schema), {"event_name": "purchase", "deep": datum}
    )
    (decoded,) = decoder.decode_batch([stream.getvalue()])
    assert decoded == {"event_name": "purchase", "deep": datum}


@pytest.mark.parametrize(
    "schema", [PROJECT_SCHEMA, padded("null"), padded(AMPLIFYING["records of 10 nulls"][0])]
)
def test_the_prescan_walks_valid_messages_to_their_end(schema: dict[str, Any]) -> None:
    """The pre-scan never refuses what fastavro writes (it runs before cavro and fastavro)."""
    compiled = decoding._compile(schema, logical_as_base=True)
    parsed = fastavro.parse_schema(copy.deepcopy(schema))
    encoder = decoding._PlainEncoder(schema)
    values = [encoder.encode(event) for event in generate_events(50, seed=7, now_ms=NOW_MS)]
    values += [b[:-1] + zigzag(3) + b"\x00" for b in values[:5] if schema is not PROJECT_SCHEMA]
    for value in values:
        scan = decoding._Scan(value, 0)
        scan.node(compiled.program)
        assert scan._pos == len(value)
        fastavro.schemaless_reader(io.BytesIO(value), parsed, None)
