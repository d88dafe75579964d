"""Projection: the compiled reader reads only the values the mapping needs. Every event must map
exactly as when it is decoded whole and read by path, and every record the whole decode refuses
must be refused the same way."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from consumer.avro import decoding
from consumer.avro.decoding import EXTRA_FIELD, DecodeFailure, Decoder, Encoder
from consumer.config import SchemaSettings
from consumer.devtools.samples import generate_events
from tests.consumer.avro.records import memory_kept, native_reader_built
from transforms import CompiledMapping, MappingSettings, map_event, map_values
from transforms.paths import PathReader

if not native_reader_built():
    pytest.skip("the compiled reader was not built (no C compiler)", allow_module_level=True)

NOW_MS = 1_773_892_800_000
PROJECT_SCHEMA = schemas.load_schema(schemas.TRACKING_EVENT)
DECODER = Decoder(SchemaSettings())
ENCODER = Encoder(SchemaSettings())
DEFAULT = MappingSettings().compile()
# Re-pointed fields: other schema fields, a path the schema does not name (only an extra
# property can fill it), item paths through the product record.
REMAPPED = MappingSettings(
    field_mapping={
        "source_url": "context.page.referrer",
        "user.external_ids_sha256": "user.consistent_anonymous_id",
        "user.emails_sha256": "custom.email",
        "data.contents.X.name": "items.X.product.brand",
        "data.contents.X.id": "items.X.product.id",
    }
).compile()


def paths_of(compiled: CompiledMapping) -> list[tuple[str, ...]]:
    return list(compiled.event_reader.index)


def projector(compiled: CompiledMapping, decoder: Decoder = DECODER) -> Any:
    project = decoder.projector(
        paths_of(compiled), compiled.items, list(compiled.item_reader.index)
    )
    assert project is not None
    return project


def assert_maps_as_whole(compiled: CompiledMapping, values: list[bytes | None]) -> list[Any]:
    """Map every value both ways; returns what the projection gave."""
    whole = DECODER.decode_batch(values)
    projected = projector(compiled)(values)
    read = PathReader(paths_of(compiled)).read
    for entire, got in zip(whole, projected, strict=True):
        if isinstance(entire, DecodeFailure):
            assert got == entire
            continue
        assert not isinstance(got, DecodeFailure)
        got_values = got if isinstance(got, tuple) else read(got)
        assert repr(map_values(got_values, compiled, NOW_MS)) == repr(
            map_event(entire, compiled, NOW_MS)
        )
    return projected


@pytest.mark.parametrize("compiled", [DEFAULT, REMAPPED], ids=["default", "remapped"])
def test_events_map_exactly_as_when_decoded_whole(compiled: CompiledMapping) -> None:
    events = generate_events(3000, seed=11, now_ms=NOW_MS, invalid_ratio=0.2)
    projected = assert_maps_as_whole(compiled, [ENCODER.encode(e, "t") for e in events])
    tuples = sum(isinstance(got, tuple) for got in projected)
    # Whole decodes only where an extra property lands on a value the mapping reads (the
    # invalid events carry misfit values there).
    assert tuples >= 0.85 * len(events), tuples


def test_extra_properties_where_no_path_reads_keep_the_projection() -> None:
    event = generate_events(1, seed=5, now_ms=NOW_MS)[0]
    event["ab_test"] = {"variant": "B"}
    event["user"]["nickname"] = "jo"
    event["items"] = [{"id": "a", "price": 1.5, "variant": "red"}, {"id": "b", "price": 2}]
    event["items"][1]["product"] = {"name": "B", "colour": "blue"}
    value = ENCODER.encode(event, "t")
    (whole,) = DECODER.decode_batch([value])
    assert isinstance(whole, dict)
    assert whole["items"][0]["variant"] == "red"  # an extra property, put back in place
    (got,) = assert_maps_as_whole(DEFAULT, [value])
    assert isinstance(got, tuple)


def test_extra_properties_on_read_values_take_the_whole_decode() -> None:
    event = generate_events(1, seed=5, now_ms=NOW_MS)[0]
    event["custom"] = {"email": "Jane@Example.com"}  # REMAPPED reads custom.email
    event["user"]["email"] = 42  # a misfit: travels as an extra property at /user/email
    value = ENCODER.encode(event, "t")
    for compiled in (DEFAULT, REMAPPED):
        (got,) = assert_maps_as_whole(compiled, [value])
        assert isinstance(got, dict)
    mapped = map_event(DECODER.decode_batch([value])[0], REMAPPED, NOW_MS)
    assert "emails_sha256" in mapped.event["user"]  # type: ignore[union-attr]


def with_extras(extras: dict[str, str], **fields: Any) -> bytes:
    """A record written as is (no misfit values moved to extras), with these extras."""
    stream = io.BytesIO()
    record = {"event_name": "purchase", **fields, EXTRA_FIELD: extras}
    fastavro.schemaless_writer(stream, DECODER._parsed, record)
    return stream.getvalue()


ITEMS = [{"id": "a", "price": 1.0}, {"id": "b"}, {"id": "c", "product": {"name": "C"}}]


@pytest.mark.parametrize(
    ("extras", "items"),
    [
        ({"/items/3/variant": '"blue"'}, ITEMS),  # just past the end
        ({"/items/0/variant": '"blue"'}, []),
        ({"/items/0/variant": '"blue"'}, None),
        ({"/items/2/variant": '"blue"', "/items/0/product/colour": '"red"'}, ITEMS),
        ({"/ab_test": "{not json"}, ITEMS),
        ({"no slash": "1"}, ITEMS),
        ({"/ab_test": '"text"', "/ab_test/x": "1"}, ITEMS),  # into a string put back before
        ({"/context/page/url": "1", "/ab_test": "2"}, ITEMS),
        ({"/items/0/variant": '"red"', "/ab_test": '{"variant": "B"}'}, ITEMS),
        ({"/user/email": '"Jane@Example.com"'}, ITEMS),
    ],
)
def test_extra_properties_are_refused_or_kept_exactly_as_by_the_whole_decode(
    extras: dict[str, str], items: list[Any] | None
) -> None:
    value = with_extras(extras, items=items, context={"event_id": "e1"})
    assert_maps_as_whole(DEFAULT, [value])
    assert_maps_as_whole(REMAPPED, [value])


@pytest.mark.parametrize(
    ("pointer", "verdict"),
    [
        ("/ab_test", decoding._IGNORE),
        ("/ab_test/deep/er", decoding._IGNORE),
        ("/user/nickname", decoding._IGNORE),
        ("/items/1/variant", 1),
        ("/items/0/product/colour", 0),
        ("/items/0/product/brand", 0),  # a schema field no path reads
        ("/items/0/product/name", decoding._WHOLE),
        ("/items/0", decoding._WHOLE),
        ("/items/x/variant", decoding._WHOLE),
        ("/items", decoding._WHOLE),
        ("/user/email", decoding._WHOLE),
        ("/user/consent_categories/0", decoding._WHOLE),
        ("/context", decoding._WHOLE),
        ("/context/page/viewport/width/x", decoding._WHOLE),  # into a number
        ("/partners/openai/oppref", decoding._WHOLE),
        ("no slash", decoding._WHOLE),
    ],
)
def test_which_extra_properties_a_projection_can_leave_out(pointer: str, verdict: int) -> None:
    program = decoding._program(PROJECT_SCHEMA)[0]
    item_paths = list(DEFAULT.item_reader.index)
    assert (
        decoding._extras_verdict(pointer, program, paths_of(DEFAULT), DEFAULT.items, item_paths)
        == verdict
    )


def test_every_truncation_and_bad_byte_is_refused_as_by_the_whole_decode() -> None:
    event = generate_events(1, seed=8, now_ms=NOW_MS)[0]
    event["ab_test"] = {"x": 1}
    good = ENCODER.encode(event, "t")
    values: list[bytes | None] = [good[:cut] for cut in range(len(good))]
    values += [good + b"\x00", None, b""]
    values += [good[:i] + bytes([good[i] ^ 0x80]) + good[i + 1 :] for i in range(len(good))]
    projected = assert_maps_as_whole(DEFAULT, values)
    assert sum(isinstance(got, DecodeFailure) for got in projected) >= len(good)


def test_invalid_utf8_in_a_skipped_string_is_refused() -> None:
    event = {"event_name": "purchase", "context": {"page": {"title": "zz"}}}
    value = ENCODER.encode(event, "t").replace(b"zz", b"\xff\xfe")
    (got,) = projector(DEFAULT)([value])
    assert isinstance(got, DecodeFailure)
    assert got == DECODER.decode_batch([value])[0]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.binary(max_size=40), st.integers(0, 4000))
def test_damaged_events_are_refused_or_mapped_as_by_the_whole_decode(
    seed: int, noise: bytes, position: int
) -> None:
    event = generate_events(1, seed=seed, now_ms=NOW_MS, invalid_ratio=0.3)[0]
    good = ENCODER.encode(event, "t")
    at = position % len(good)
    assert_maps_as_whole(DEFAULT, [good, good[:at] + noise + good[at + len(noise) :]])


def test_random_records_of_the_schema_read_the_same_values() -> None:
    bodies = decoding._random_bodies(DECODER._parsed)
    assert_maps_as_whole(DEFAULT, bodies)
    assert_maps_as_whole(REMAPPED, bodies)


def test_routes_read_their_field_in_the_same_pass() -> None:
    paths = [*paths_of(DEFAULT), ("context", "page", "lang")]
    project = DECODER.projector(paths, DEFAULT.items, list(DEFAULT.item_reader.index))
    assert project is not None
    event = {"event_name": "purchase", "context": {"page": {"lang": "fr"}}}
    (got,) = project([ENCODER.encode(event, "t")])
    assert got[len(paths) - 1] == "fr"


@pytest.mark.parametrize(
    ("paths", "why"),
    [
        ([("context",), ("context", "page", "url")], "also the start of another"),
        ([("user",), ("user",)], "given twice"),
    ],
)
def test_paths_it_cannot_project_read_whole_records(paths: list[tuple[str, ...]], why: str) -> None:
    with pytest.raises(decoding._NotProjectable, match=why):
        decoding._projection(decoding._program(PROJECT_SCHEMA)[0], paths, None, [])
    assert DECODER.projector(paths, None, []) is None


def test_a_path_through_a_map_reads_whole_records(tmp_path: Path) -> None:
    schema = {
        "type": "record",
        "name": "E",
        "fields": [
            {"name": "event_name", "type": "string"},
            {"name": "context", "type": {"type": "map", "values": "string"}},
        ],
    }
    path = tmp_path / "schema.avsc"
    path.write_text(json.dumps(schema), "utf-8")
    decoder = Decoder(SchemaSettings(local_schema=str(path)))
    assert decoder.engine == "native"
    assert decoder.projector([("event_name",), ("context", "event_id")], None, []) is None
    assert decoder.projector([("event_name",)], None, []) is not None


@pytest.mark.parametrize("engine", ["fastavro", "cavro"])
def test_only_the_compiled_reader_projects(engine: str) -> None:
    decoder = Decoder(SchemaSettings(decoder=engine))  # type: ignore[arg-type]
    assert decoder.projector(paths_of(DEFAULT), DEFAULT.items, []) is None


@pytest.mark.parametrize(
    "program",
    [(13, 1, (15, 1, (0,))), (13, 1, (15, -1, (0,))), (13, 2, (16, ((15, 2, (2,)),)))],
)
def test_projections_storing_outside_their_slots_are_refused(program: Any) -> None:
    from consumer.avro._avro_reader import Reader

    with pytest.raises(ValueError, match="projection slot out of range"):
        Reader(program)


@pytest.mark.parametrize(
    "program", [(13, 1, (99, (0,))), (13, 1, (16, [(14, (0,))])), (14,), (13, -1, (14, (0,)))]
)
def test_malformed_projections_are_refused(program: Any) -> None:
    from consumer.avro._avro_reader import Reader

    with pytest.raises(TypeError):
        Reader(program)


def test_projecting_leaks_no_memory_on_success_or_failure() -> None:
    project = projector(DEFAULT)
    event = generate_events(1, seed=3, now_ms=NOW_MS)[0]
    event["ab_test"] = {"x": 1}
    value = ENCODER.encode(event, "t")
    values = [value, value[: len(value) // 2], with_extras({"/user/email": '"a@b.c"'})] * 500

    def churn() -> None:
        for got in project(values):
            assert got is not None

    grown = memory_kept(churn)
    assert grown < 64 * 1024, f"{grown} bytes kept after 3000 more projections"
