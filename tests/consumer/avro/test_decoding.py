"""Decoding: plain and Confluent framing, the registry (a real HTTP stub, the real client),
writer → reader schema resolution, every kind of bad bytes, and the fast readers (the compiled
one, cavro) checked against fastavro."""

from __future__ import annotations

import copy
import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from consumer.avro import decoding
from consumer.avro.decoding import Decoder
from consumer.avro.encoder import Encoder
from consumer.avro.framing import EXTRA_FIELD, BodyDecoder, DecodeFailure
from consumer.config import ConfigError, SchemaSettings
from consumer.devtools.registry_stub import RegistryStub
from consumer.devtools.samples import generate_events
from consumer.errors import RegistryUnavailable
from tests.consumer.avro.records import exact, native_reader_built

NOW_MS = 1_773_892_800_000
NATIVE = native_reader_built()
ENGINES = ["fastavro", "cavro", *(["native"] if NATIVE else [])]
FAST_ENGINES = ENGINES[1:]
PROJECT_SCHEMA = schemas.load_schema(schemas.TRACKING_EVENT)
# Fail fast: a registry outage must surface as RegistryUnavailable, not as client retries.
NO_RETRIES = {"max.retries": 0}


def avro_body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    stream = io.BytesIO()
    fastavro.schemaless_writer(stream, fastavro.parse_schema(copy.deepcopy(schema)), record)
    return stream.getvalue()


def framed(schema_id: int, body: bytes) -> bytes:
    return struct.pack(">BI", 0, schema_id) + body


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryStub]:
    with RegistryStub() as stub:
        yield stub


@pytest.fixture(autouse=True)
def registry_is_up(registry: RegistryStub) -> Iterator[None]:
    yield
    registry.set_available(True)


def registry_settings(registry: RegistryStub, **overrides: Any) -> SchemaSettings:
    return SchemaSettings(registry_url=registry.url, registry_settings=NO_RETRIES, **overrides)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return generate_events(300, seed=21, now_ms=NOW_MS, invalid_ratio=0.1)


# --- plain and Confluent framing --------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_plain_avro_decodes_to_the_events_that_were_encoded(
    engine: str, events: list[dict[str, Any]]
) -> None:
    settings = SchemaSettings(decoder=engine)
    decoder = Decoder(settings)
    assert decoder.engine == engine
    assert decoder.wire_format == "plain"
    encoder = Encoder(settings)
    decoded = decoder.decode_batch([encoder.encode(e, "events") for e in events])
    assert [exact(d) for d in decoded] == [exact(e) for e in events]


@pytest.mark.parametrize("engine", ENGINES)
def test_confluent_framing_with_the_registry(
    engine: str, registry: RegistryStub, events: list[dict[str, Any]]
) -> None:
    settings = registry_settings(registry, decoder=engine)
    encoder = Encoder(settings)
    values = [encoder.encode(e, "orders") for e in events]
    client = SchemaRegistryClient({"url": registry.url})
    schema_id = client.get_latest_version("orders-value").schema_id
    assert schema_id is not None
    assert {v[:5] for v in values} == {framed(schema_id, b"")}
    decoder = Decoder(settings)
    assert decoder.wire_format == "confluent"
    assert [exact(d) for d in decoder.decode_batch(values)] == [exact(e) for e in events]


def test_confluent_framing_without_a_registry_ignores_the_schema_id(
    events: list[dict[str, Any]],
) -> None:
    settings = SchemaSettings(wire_format="confluent")
    body = Encoder(SchemaSettings()).encode(events[0], "events")
    decoded = Decoder(settings).decode_batch([framed(12345, body), body])
    assert exact(decoded[0]) == exact(events[0])
    assert isinstance(decoded[1], DecodeFailure)
    assert "magic byte" in decoded[1].message
    assert Encoder(settings).encode(events[0], "events") == framed(0, body)


def test_auto_wire_format_follows_the_registry_setting(registry: RegistryStub) -> None:
    assert Decoder(SchemaSettings()).wire_format == "plain"
    assert Decoder(registry_settings(registry)).wire_format == "confluent"
    assert Decoder(registry_settings(registry, wire_format="plain")).wire_format == "plain"


# --- writer → reader schema resolution -------------------------------------------------------


def older_writer_schema() -> dict[str, Any]:
    """An older producer's schema: no page_type, no partners, no extras map."""
    schema = copy.deepcopy(PROJECT_SCHEMA)
    gone = {"page_type", "partners", EXTRA_FIELD}
    schema["fields"] = [f for f in schema["fields"] if f["name"] not in gone]
    return schema


def newer_writer_schema() -> dict[str, Any]:
    """A newer producer's schema: a field this reader does not know yet."""
    schema = copy.deepcopy(PROJECT_SCHEMA)
    schema["fields"].insert(
        1, {"name": "loyalty_tier", "type": ["null", "string"], "default": None}
    )
    return schema


@pytest.mark.parametrize("engine", ENGINES)
def test_writer_schemas_that_differ_are_resolved_to_the_project_schema(
    engine: str, registry: RegistryStub
) -> None:
    older = registry.register("evolution-value", json.dumps(older_writer_schema()))
    newer = registry.register("evolution-value", json.dumps(newer_writer_schema()))
    event = {
        "event_name": "purchase",
        "page_type": None,
        "context": {"event_id": "e-1", "event_timestamp": NOW_MS, "page": None, "device": None},
        "value": 12.5,
        "currency": "EUR",
    }
    old_value = framed(older, avro_body(older_writer_schema(), event))
    new_value = framed(newer, avro_body(newer_writer_schema(), {**event, "loyalty_tier": "gold"}))
    decoded = Decoder(registry_settings(registry, decoder=engine)).decode_batch(
        [old_value, new_value]
    )
    for record in decoded:
        assert isinstance(record, dict)
        assert exact(record) == exact(event)
        assert record["partners"] is None  # the reader's default for a field the writer lacks
        assert "loyalty_tier" not in record


def test_both_engines_resolve_writer_schemas_identically(registry: RegistryStub) -> None:
    schema_id = registry.register("evolution2-value", json.dumps(newer_writer_schema()))
    parsed = fastavro.parse_schema(newer_writer_schema())
    values = [
        framed(schema_id, avro_body(newer_writer_schema(), record))
        for record in fastavro.utils.generate_many(parsed, 50)
    ]
    fast = Decoder(registry_settings(registry, decoder="fastavro")).decode_batch(values)
    for engine in FAST_ENGINES:
        other = Decoder(registry_settings(registry, decoder=engine)).decode_batch(values)
        assert [repr(r) for r in other] == [repr(r) for r in fast]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_incompatible_writer_schema_makes_its_messages_undecodable(
    engine: str, registry: RegistryStub
) -> None:
    schema = copy.deepcopy(PROJECT_SCHEMA)
    schema["fields"][0] = {"name": "event_name", "type": "long"}
    schema_id = registry.register("incompatible-value", json.dumps(schema))
    value = framed(schema_id, avro_body(schema, {"event_name": 7}))
    (result,) = Decoder(registry_settings(registry, decoder=engine)).decode_batch([value])
    assert isinstance(result, DecodeFailure)
    assert result.reason == "undecodable"
    assert f"schema id {schema_id}" in result.message


def test_a_schema_of_another_type_makes_its_messages_undecodable(registry: RegistryStub) -> None:
    schema_id = registry.register("json-value", '{"type": "object"}', schema_type="JSON")
    (result,) = Decoder(registry_settings(registry)).decode_batch([framed(schema_id, b"{}")])
    assert isinstance(result, DecodeFailure)
    assert "not Avro" in result.message


def test_an_unknown_schema_id_is_undecodable_and_asked_once(registry: RegistryStub) -> None:
    decoder = Decoder(registry_settings(registry))
    value = framed(4040, b"\x00")
    before = registry.requests
    first = decoder.decode_batch([value, value])
    second = decoder.decode_batch([value])
    assert all(isinstance(r, DecodeFailure) for r in first + second)
    assert "unknown to the registry" in first[0].message  # type: ignore[union-attr]
    assert registry.requests == before + 1


def test_unknown_schema_ids_remembered_are_bounded(
    registry: RegistryStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random ids in hostile messages cannot grow memory: past the bound the remembered
    unknown ids are forgotten (and asked again), never kept."""
    from consumer.avro import decoding

    monkeypatch.setattr(decoding, "_MAX_UNKNOWN_IDS", 3)
    decoder = Decoder(registry_settings(registry))
    before = registry.requests
    ids = [5000 + n for n in range(7)]
    decoder.decode_batch([framed(i, b"\x00") for i in ids])
    assert registry.requests == before + 7
    decoder.decode_batch([framed(ids[-1], b"\x00")])  # remembered: not asked again
    assert registry.requests == before + 7
    decoder.decode_batch([framed(ids[0], b"\x00")])  # forgotten when the bound was hit
    assert registry.requests == before + 8


# --- the registry going away ------------------------------------------------------------------


@pytest.mark.parametrize("close_connections", [False, True])
def test_registry_down_raises_registry_unavailable_then_recovers(
    registry: RegistryStub, events: list[dict[str, Any]], close_connections: bool
) -> None:
    settings = registry_settings(registry)
    values = [Encoder(settings).encode(e, "outage") for e in events[:20]]
    decoder = Decoder(settings)
    registry.set_available(False, close_connections=close_connections)
    with pytest.raises(RegistryUnavailable):
        decoder.decode_batch(values)
    with pytest.raises(RegistryUnavailable):  # not cached as a failure: asked again
        decoder.decode_batch(values)
    registry.set_available(True)
    assert [exact(d) for d in decoder.decode_batch(values)] == [exact(e) for e in events[:20]]


def test_known_schema_ids_decode_while_the_registry_is_down(
    registry: RegistryStub, events: list[dict[str, Any]]
) -> None:
    settings = registry_settings(registry)
    values = [Encoder(settings).encode(e, "cached") for e in events[:5]]
    decoder = Decoder(settings)
    assert all(isinstance(d, dict) for d in decoder.decode_batch(values))
    registry.set_available(False)
    assert all(isinstance(d, dict) for d in decoder.decode_batch(values))


# --- bad bytes --------------------------------------------------------------------------------

SECRET = "jane.secret@example.com"


def malformed_values() -> dict[str, bytes | None]:
    encoder = Encoder(SchemaSettings())
    good = encoder.encode({"event_name": "purchase", "user": {"email": SECRET}}, "events")
    bad_utf8 = encoder.encode({"event_name": "zz", "user": {"email": SECRET}}, "events").replace(
        b"zz", b"\xff\xfe"
    )

    def with_extras(extras: dict[str, str], items: list[Any] | None = None) -> bytes:
        record = {"event_name": "x", "items": items, EXTRA_FIELD: extras}
        return avro_body(PROJECT_SCHEMA, record)

    return {
        "no value": None,
        "empty": b"",
        "truncated": good[:-4],
        "trailing garbage": good + b"\x00",
        "bad union index": b"\x0a" + good[1:],
        "bad utf-8": bad_utf8,
        "noise": bytes(range(255, 0, -7)) * 3,
        "extras pointer without slash": with_extras({"user": '{"a": 1}'}),
        "extras value not JSON": with_extras({"/user": "{not json"}),
        "extras index out of range": with_extras({"/items/3/variant": '"blue"'}, items=[]),
    }


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", list(malformed_values()))
def test_every_kind_of_bad_bytes_is_a_decode_failure_without_payload(
    engine: str, kind: str
) -> None:
    (result,) = Decoder(SchemaSettings(decoder=engine)).decode_batch([malformed_values()[kind]])
    assert isinstance(result, DecodeFailure), kind
    assert result.reason == "undecodable"
    assert SECRET not in result.message
    assert "jane" not in result.message


@pytest.mark.parametrize(
    "value", [b"\x01\x00\x00\x00\x01\x02", b"\x00\x00\x00", b"\x02plain avro, not framed"]
)
def test_confluent_framing_checks_the_magic_byte_and_header(
    registry: RegistryStub, value: bytes
) -> None:
    (result,) = Decoder(registry_settings(registry)).decode_batch([value])
    assert isinstance(result, DecodeFailure)
    assert "Confluent wire format" in result.message


@pytest.fixture(scope="module")
def decoders() -> dict[str, Decoder]:
    return {engine: Decoder(SchemaSettings(decoder=engine)) for engine in ENGINES}


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(decoders: dict[str, Decoder], value: bytes) -> None:
    for decoder in decoders.values():
        (result,) = decoder.decode_batch([value])
        assert isinstance(result, dict | DecodeFailure)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 10_000))
def test_damaged_messages_never_raise_and_engines_agree_when_both_decode(
    decoders: dict[str, Decoder], position: int, byte: int, cut: int
) -> None:
    event = generate_events(1, seed=position, now_ms=NOW_MS)[0]
    good = Encoder(SchemaSettings()).encode(event, "events")
    damaged = bytearray(good)
    damaged[position % len(good)] = byte
    values = [bytes(damaged), good[: cut % len(good)]]
    results = {name: d.decode_batch(values) for name, d in decoders.items()}
    for engine in ENGINES:
        for result in results[engine]:
            assert isinstance(result, dict | DecodeFailure)
    for engine in FAST_ENGINES:
        for fast, other in zip(results["fastavro"], results[engine], strict=True):
            # They may disagree on damaged bytes: fastavro reads a negative union index as a
            # Python index from the end (a damaged record decodes to garbage), the others
            # reject it. Whenever both decode, they must agree.
            if isinstance(fast, dict) and isinstance(other, dict):
                assert repr(fast) == repr(other)


# --- engine choice ----------------------------------------------------------------------------


def test_every_engine_gives_fastavros_output_on_2000_events(
    decoders: dict[str, Decoder],
) -> None:
    events = generate_events(2000, seed=99, now_ms=NOW_MS, invalid_ratio=0.1)
    encoder = Encoder(SchemaSettings())
    values = [encoder.encode(e, "events") for e in events]
    fast = decoders["fastavro"].decode_batch(values)
    for engine in FAST_ENGINES:
        assert [repr(r) for r in decoders[engine].decode_batch(values)] == [repr(r) for r in fast]
    assert [exact(r) for r in fast] == [exact(e) for e in events]


def test_auto_picks_the_fastest_reader_that_agrees_and_can_be_opted_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Decoder(SchemaSettings(decoder="auto")).engine == ("native" if NATIVE else "cavro")
    assert Decoder(SchemaSettings(decoder="fastavro")).engine == "fastavro"
    assert Decoder(SchemaSettings(decoder="cavro")).engine == "cavro"
    monkeypatch.setattr(decoding, "native_available", lambda: False)
    assert Decoder(SchemaSettings(decoder="auto")).engine == "cavro"


@pytest.mark.parametrize(
    ("engine", "available"), [("cavro", "_cavro_available"), ("native", "_native_available")]
)
def test_a_missing_reader_falls_back_under_auto_and_is_a_config_error_when_asked_for(
    monkeypatch: pytest.MonkeyPatch, engine: str, available: str
) -> None:
    monkeypatch.setattr(decoding, "cavro_available", lambda: False)
    monkeypatch.setattr(decoding, "native_available", lambda: False)
    assert Decoder(SchemaSettings(decoder="auto")).engine == "fastavro"
    with pytest.raises(ConfigError, match=r"schema\.decoder"):
        Decoder(SchemaSettings(decoder=engine))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("engine", "factory"),
    [("cavro", "cavro_decoder"), *([("native", "native_decoder")] if NATIVE else [])],
)
def test_a_reader_that_disagrees_with_fastavro_is_not_used(
    monkeypatch: pytest.MonkeyPatch, engine: str, factory: str
) -> None:
    real = getattr(decoding, factory)

    def drifting(schema: Any) -> BodyDecoder:
        decode = real(schema)

        def drift(value: bytes, start: int) -> dict[str, Any]:
            record = decode(value, start)
            return {**record, "drift": True}

        return drift

    monkeypatch.setattr(decoding, factory, drifting)
    assert Decoder(SchemaSettings(decoder="auto")).engine != engine
    with pytest.raises(ConfigError, match="differs"):
        Decoder(SchemaSettings(decoder=engine))  # type: ignore[arg-type]


# --- configuration errors ---------------------------------------------------------------------


def test_a_missing_local_schema_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"schema\.local_schema"):
        Decoder(SchemaSettings(local_schema=str(tmp_path / "nope.avsc")))


def test_an_invalid_local_schema_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.avsc"
    path.write_text('{"type": "record", "name": "X", "fields": [{"name": "a"}]}', "utf-8")
    with pytest.raises(ConfigError, match="not a valid Avro schema"):
        Decoder(SchemaSettings(local_schema=str(path)))


def test_unknown_registry_settings_are_a_config_error() -> None:
    settings = SchemaSettings(
        registry_url="http://127.0.0.1:9", registry_settings={"no.such.setting": 1}
    )
    with pytest.raises(ConfigError, match=r"schema\.registry_settings"):
        Decoder(settings)


# --- the registry stub, driven by the real client ---------------------------------------------


def test_the_stub_speaks_the_protocol_the_real_client_uses(registry: RegistryStub) -> None:
    client = SchemaRegistryClient({"url": registry.url, **NO_RETRIES})
    first = Schema(json.dumps({"type": "record", "name": "A", "fields": []}), "AVRO")
    second = Schema(json.dumps({"type": "record", "name": "B", "fields": []}), "AVRO")
    first_id = client.register_schema("stub-value", first)
    second_id = client.register_schema("stub-value", second)
    assert first_id != second_id
    assert client.register_schema("other-value", first) == first_id  # same schema, same id
    assert json.loads(client.get_schema(second_id).schema_str or "")["name"] == "B"
    assert client.lookup_schema("stub-value", first).version == 1
    latest = client.get_latest_version("stub-value")
    assert (latest.version, latest.schema_id) == (2, second_id)
    assert client.get_version("stub-value", 1).schema_id == first_id
    assert client.get_versions("stub-value") == [1, 2]
    assert {"stub-value", "other-value"} <= set(client.get_subjects())
    assert client.delete_subject("other-value") == [1]
    with pytest.raises(SchemaRegistryError) as missing:
        SchemaRegistryClient({"url": registry.url}).get_schema(999_999)
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40403)


def test_the_stub_answers_503_while_unavailable(registry: RegistryStub) -> None:
    registry.set_available(False)
    with pytest.raises(SchemaRegistryError) as down:
        SchemaRegistryClient({"url": registry.url, **NO_RETRIES}).get_schema(1)
    assert down.value.http_status_code == 503
