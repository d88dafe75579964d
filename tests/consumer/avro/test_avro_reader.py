"""The compiled Avro reader (consumer/avro/_avro_reader.c): fastavro's output for every Avro
type, and malformed or hostile bytes rejected with an exception, never a crash, an over-read or an
unbounded allocation."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import fastavro
import pytest
from fastavro.utils import generate_many
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from consumer.avro import decoding
from consumer.avro.decoding import Decoder, Encoder
from consumer.config import SchemaSettings
from consumer.devtools.samples import generate_events
from tests.consumer.avro.records import memory_kept, native_reader_built, zigzag

if not native_reader_built():
    pytest.skip("the compiled reader was not built (no C compiler)", allow_module_level=True)

NOW_MS = 1_773_892_800_000
PROJECT_SCHEMA = schemas.load_schema(schemas.TRACKING_EVENT)

EVERY_TYPE: dict[str, Any] = {
    "type": "record",
    "name": "Every",
    "namespace": "test.types",
    "fields": [
        {"name": "n", "type": "null"},
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "s", "type": {"type": "string"}},
        {"name": "e", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "again", "type": "Four"},
        {"name": "colour", "type": "test.types.Colour"},
        {"name": "a", "type": {"type": "array", "items": ["null", "long", "string"]}},
        {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "double"}}},
        {
            "name": "inner",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Inner",
                    "namespace": "other",
                    "fields": [{"name": "x", "type": "long"}, {"name": "e", "type": "null"}],
                },
            ],
        },
        {"name": "nulls", "type": {"type": "array", "items": "null"}},
        {"name": "inners", "type": {"type": "array", "items": "other.Inner"}},
    ],
}


def body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    stream = io.BytesIO()
    fastavro.schemaless_writer(stream, fastavro.parse_schema(copy.deepcopy(schema)), record)
    return stream.getvalue()


def fastavro_read(schema: dict[str, Any], value: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(value), fastavro.parse_schema(schema), None)


def test_every_avro_type_decodes_as_fastavro_does() -> None:
    parsed = fastavro.parse_schema(copy.deepcopy(EVERY_TYPE))
    read = decoding._native_decoder(EVERY_TYPE)
    records = list(generate_many(parsed, 300))
    records[0]["nulls"] = [None] * 5
    for record in records:
        value = body(EVERY_TYPE, record)
        assert repr(read(value, 0)) == repr(fastavro_read(EVERY_TYPE, value))


def test_a_bare_name_means_the_type_in_the_enclosing_namespace_first() -> None:
    # "Kind" inside namespace "ns" is ns.Kind (a fixed), not the enum Kind with no namespace.
    schema = {
        "type": "record",
        "name": "Outer",
        "fields": [
            {"name": "a", "type": {"type": "enum", "name": "Kind", "symbols": ["X", "Y"]}},
            {
                "name": "inner",
                "type": {
                    "type": "record",
                    "name": "Inner",
                    "namespace": "ns",
                    "fields": [
                        {"name": "k", "type": {"type": "fixed", "name": "Kind", "size": 2}},
                        {"name": "again", "type": "Kind"},
                    ],
                },
            },
            {"name": "outer_kind", "type": "Kind"},
        ],
    }
    value = body(schema, {"a": "Y", "inner": {"k": b"ab", "again": b"cd"}, "outer_kind": "X"})
    assert decoding._native_decoder(schema)(value, 0) == fastavro_read(schema, value)


def test_project_events_decode_as_fastavro_does_from_any_start_and_buffer() -> None:
    read = decoding._native_decoder(PROJECT_SCHEMA)
    encoder = Encoder(SchemaSettings())
    for event in generate_events(300, seed=5, now_ms=NOW_MS, invalid_ratio=0.2):
        value = encoder.encode(event, "events")
        expected = repr(fastavro_read(PROJECT_SCHEMA, value))
        assert repr(read(value, 0)) == expected
        framed = b"\x00\x00\x00\x00\x07" + value
        assert repr(read(framed, 5)) == expected
        assert repr(read(memoryview(bytearray(framed)), 5)) == expected  # type: ignore[arg-type]


def test_every_truncation_and_trailing_byte_is_an_error() -> None:
    read = decoding._native_decoder(PROJECT_SCHEMA)
    event = generate_events(1, seed=3, now_ms=NOW_MS)[0]
    value = Encoder(SchemaSettings()).encode(event, "events")
    for cut in range(len(value)):
        with pytest.raises(ValueError):  # noqa: PT011 (any malformed-input error)
            read(value[:cut], 0)
    with pytest.raises(decoding._TrailingBytesError):
        read(value + b"\x00", 0)
    with pytest.raises(ValueError, match="start"):
        read(value, len(value) + 1)


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        ("string", zigzag(2**40), "past the end"),
        ("string", zigzag(-3), "negative length"),
        ("bytes", zigzag(5) + b"abc", "past the end"),
        ({"type": "array", "items": "long"}, zigzag(2**60), "past the end"),
        ({"type": "array", "items": "long"}, zigzag(-(2**62)) + zigzag(2**50), "past the end"),
        ({"type": "array", "items": "null"}, zigzag(10**9), "zero-width"),
        (  # the bound is per message: each inner array would take a million more
            {"type": "array", "items": {"type": "array", "items": "null"}},
            zigzag(2) + (zigzag(10**6) + b"\x00") * 2 + b"\x00",
            "zero-width",
        ),
        ({"type": "map", "values": "null"}, zigzag(10**6), "past the end"),
        ("long", b"\xff" * 11, "varint"),
        ("long", b"\xff\xff", "truncated"),
        ("boolean", b"\x02", "neither 0 nor 1"),
        ("double", b"\x00" * 7, "truncated"),
        (["null", "long"], zigzag(2), "union index"),
        (["null", "long"], zigzag(-1), "union index"),
        ({"type": "enum", "name": "E", "symbols": ["A"]}, zigzag(1), "enum index"),
        ({"type": "fixed", "name": "F", "size": 4}, b"abc", "truncated"),
    ],
)
def test_hostile_lengths_counts_and_indexes_are_rejected_up_front(
    schema: Any, value: bytes, message: str
) -> None:
    read = decoding._native_decoder(schema)
    with pytest.raises(ValueError, match=message):
        read(value, 0)


def test_invalid_utf8_is_an_error() -> None:
    with pytest.raises(UnicodeDecodeError):
        decoding._native_decoder("string")(zigzag(2) + b"\xc3\x28", 0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_or_decode_exactly_as_fastavro(value: bytes) -> None:
    read = decoding._native_decoder(EVERY_TYPE)
    try:
        record = read(value, 0)
    except ValueError:
        return
    # Never more lenient than the reference: what it accepts, fastavro reads the same way.
    stream = io.BytesIO(value)
    expected = fastavro.schemaless_reader(stream, fastavro.parse_schema(EVERY_TYPE), None)
    assert stream.tell() == len(value)
    assert repr(record) == repr(expected)


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "record",
            "name": "Node",
            "fields": [{"name": "next", "type": ["null", "Node"]}],
        },
        {
            "type": "record",
            "name": "T",
            "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
        },
    ],
    ids=["recursive", "logical type"],
)
def test_schemas_it_does_not_compile_fall_back_to_another_reader(
    tmp_path: Any, schema: dict[str, Any]
) -> None:
    with pytest.raises(decoding._NotCompilable):
        decoding._program(schema)
    path = tmp_path / "schema.avsc"
    path.write_text(json.dumps(schema), "utf-8")
    decoder = Decoder(SchemaSettings(local_schema=str(path)))
    assert decoder.engine in {"cavro", "fastavro"}


@pytest.mark.parametrize(
    "program",
    [
        (),
        ("x",),
        (7, ("a",), ()),
        (9, (2,), -1),
        (9, (2,), 1, -1),
        (10, (0,), 1),
        (11, [(0,)]),
        (99,),
        (12, -1),
    ],
)
def test_malformed_programs_are_refused_when_the_reader_is_built(program: Any) -> None:
    from consumer.avro._avro_reader import Reader

    with pytest.raises(TypeError):
        Reader(program)


def test_decoding_leaks_no_memory_on_success_or_failure() -> None:
    read = decoding._native_decoder(PROJECT_SCHEMA)
    event = generate_events(1, seed=3, now_ms=NOW_MS)[0]
    value = Encoder(SchemaSettings()).encode(event, "events")
    broken = value[: len(value) // 2]

    def churn() -> None:
        for _ in range(2000):
            read(value, 0)
            with pytest.raises(ValueError):  # noqa: PT011
                read(broken, 0)

    grown = memory_kept(churn)
    assert grown < 64 * 1024, f"{grown} bytes kept after 4000 more decodes"
