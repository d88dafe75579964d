"""The Avro schemas: they parse, ship with the package, and JSON ⇄ Avro round-trips with fastavro
lose nothing (types included), whatever the event carries."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from consumer.avro.decoding import Decoder
from consumer.avro.encoder import Encoder
from consumer.avro.framing import EXTRA_FIELD, DecodeFailure
from consumer.codes import DLQ_REASONS
from consumer.config import AppConfig, SchemaSettings
from consumer.devtools.samples import HOUR_MS, generate_events
from tests.consumer.avro.records import exact
from transforms import Mapped, map_event
from transforms.timestamps import parse_timestamp_ms

NOW_MS = 1_773_892_800_000
FASTAVRO = SchemaSettings(decoder="fastavro")

# The worked example of the mapping contract, as CA sends it.
WORKED_EXAMPLE: dict[str, Any] = {
    "event_name": "purchase",
    "id": "order_12345",
    "type": "online",
    "value": 25.99,
    "currency": "usd",
    "context": {
        "event_id": "order_12345",
        "event_timestamp": 1773892800000,
        "page": {"url": "https://shop.example.com/checkout/confirmation?email=a%40b.c#top"},
        "device": {
            "ip": "203.0.113.1",
            "user_agent": "Mozilla/5.0",
            "cookie": "_ga=1; __oppref=oppref_abc",
        },
    },
    "user": {
        "email": " User@Example.com ",
        "phone": "+1 (415) 555-2671",
        "id": "customer_123",
        "country": "USA",
        "city": " San Francisco ",
        "zipcode": "94107",
        "consent_categories": ["1", "2"],
    },
    "items": [
        {"id": "sku_123", "quantity": 1, "product": {"name": "Starter bundle", "price": 25.99}}
    ],
}


ENCODER, DECODER = Encoder(FASTAVRO), Decoder(FASTAVRO)


def round_trip(events: list[Any]) -> list[Any]:
    return DECODER.decode_batch([ENCODER.encode(event, "events") for event in events])


# --- the files --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [schemas.TRACKING_EVENT, schemas.DEAD_LETTER])
def test_schema_files_parse_with_fastavro_and_cavro(name: str) -> None:
    cavro = pytest.importorskip("cavro")
    schema = schemas.load_schema(name)
    parsed = fastavro.parse_schema(schema)
    assert isinstance(parsed, dict)
    assert parsed["type"] == "record"
    assert cavro.Schema(schema, record_decodes_to_dict=True) is not None


def test_every_tracking_event_field_is_nullable_with_a_default() -> None:
    def check(record: dict[str, Any], path: str) -> int:
        count = 0
        for field in record["fields"]:
            where = f"{path}.{field['name']}"
            if field["name"] == EXTRA_FIELD:
                assert field["default"] == {}, where
                continue
            assert field["type"][0] == "null", where
            assert field["default"] is None, where
            count += 1
            for branch in field["type"][1:]:
                if isinstance(branch, dict) and branch["type"] == "record":
                    count += check(branch, where)
                if isinstance(branch, dict) and isinstance(branch.get("items"), dict):
                    count += check(branch["items"], where)
        return count

    assert check(schemas.load_schema(schemas.TRACKING_EVENT), "") > 50


def test_default_path_resolves_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shipped = schemas.schema_path("schemas/tracking_event.avsc")
    assert shipped.is_file()
    assert shipped.is_absolute()
    assert schemas.schema_path("dead_letter.avsc").name == "dead_letter.avsc"


def test_an_existing_configured_path_wins_over_the_shipped_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schemas").mkdir()
    local = tmp_path / "schemas" / "tracking_event.avsc"
    local.write_text('{"type": "record", "name": "Local", "fields": []}', encoding="utf-8")
    assert schemas.load_schema("schemas/tracking_event.avsc")["name"] == "Local"


@pytest.mark.parametrize("missing", ["/nowhere/tracking_event.avsc", "conf/tracking_event.avsc"])
def test_a_missing_custom_path_is_an_error_not_the_shipped_file(missing: str) -> None:
    with pytest.raises(FileNotFoundError, match="no such schema file"):
        schemas.schema_path(missing)


# --- tracking events --------------------------------------------------------------------------


def test_realistic_events_round_trip_exactly() -> None:
    events = [WORKED_EXAMPLE, *generate_events(300, seed=11, now_ms=NOW_MS, invalid_ratio=0.2)]
    decoded = round_trip(events)
    assert [exact(d) for d in decoded] == [exact(e) for e in events]


def test_decoded_events_have_the_ca_shape_with_nulls_for_absent_fields() -> None:
    (decoded,) = round_trip([WORKED_EXAMPLE])
    assert isinstance(decoded, dict)
    assert decoded["context"]["page"]["url"] == WORKED_EXAMPLE["context"]["page"]["url"]
    assert decoded["context"]["page"]["title"] is None
    assert decoded["items"][0]["product"]["price"] == 25.99
    assert decoded["partners"] is None
    assert EXTRA_FIELD not in decoded


@pytest.mark.parametrize(
    "timestamp", [1639044446636, "1639044446636", "2025-04-18T07:53:39.974+02:00"]
)
def test_each_event_timestamp_form_keeps_its_type_and_value(timestamp: int | str) -> None:
    event = {"event_name": "purchase", "context": {"event_id": "e1", "event_timestamp": timestamp}}
    (decoded,) = round_trip([event])
    assert isinstance(decoded, dict)
    assert type(decoded["context"]["event_timestamp"]) is type(timestamp)
    assert decoded["context"]["event_timestamp"] == timestamp


@pytest.mark.parametrize("amount", [25, 25.0, 25.99, "25.99", "1e3", -0.0])
def test_money_and_quantities_keep_the_type_ca_sent(amount: Any) -> None:
    event = {"value": amount, "items": [{"quantity": amount, "product": {"price": amount}}]}
    (decoded,) = round_trip([event])
    assert exact(decoded) == exact(event)


def test_unknown_properties_and_misfit_types_come_back_in_place() -> None:
    event = {
        "event_name": True,  # not a string: travels as JSON, comes back as the boolean
        "payment_method": "card",
        "context": {
            "page": {"url": "https://x.example/", "location": {"href": "https://x.example/"}}
        },
        "user": {"id": 12345678901234, "consent_categories": [1, 2], "birthdate": "1990-01-01"},
        "items": [{"id": 7, "variant": "blue"}, {"product": {"price": True, "colors": ["r"]}}],
        "partners": {"openai": {"opt_out": "true", "plan_id": 3}, "tiktok": {"ttp": "x"}},
        "odd/key~name": {"nested": [1, None, "a"]},
        EXTRA_FIELD: "a property that happens to share the reserved name",
        "nothing": None,
    }
    (decoded,) = round_trip([event])
    assert isinstance(decoded, dict)
    assert exact(decoded) == exact(event)
    assert decoded["event_name"] is True
    assert decoded["user"]["consent_categories"] == [1, 2]
    assert decoded["items"][0]["variant"] == "blue"
    assert decoded["context"]["page"]["location"] == {"href": "https://x.example/"}


def test_an_event_without_unknown_properties_writes_an_empty_extras_map() -> None:
    plain = ENCODER.encode(WORKED_EXAMPLE, "events")
    parsed = fastavro.parse_schema(schemas.load_schema(schemas.TRACKING_EVENT))
    raw = fastavro.schemaless_reader(io.BytesIO(plain), parsed, None)
    assert isinstance(raw, dict)
    assert raw[EXTRA_FIELD] == {}


def test_a_purchase_with_three_items_and_full_identity_is_about_one_kilobyte() -> None:
    purchases = [
        e for e in generate_events(200, seed=3, now_ms=NOW_MS) if e["event_name"] == "purchase"
    ]
    sizes = [len(ENCODER.encode(e, "events")) for e in purchases]
    assert 700 <= sum(sizes) / len(sizes) <= 1300


# Names the schema uses, so generated objects hit schema fields as well as unknown keys.
def test_samples_are_deterministic_unique_recent_and_map_as_intended() -> None:
    events = generate_events(2000, seed=4, now_ms=NOW_MS)
    assert events == generate_events(2000, seed=4, now_ms=NOW_MS)
    assert events != generate_events(2000, seed=5, now_ms=NOW_MS)
    ids = [e["context"]["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    for event in events:
        timestamp = parse_timestamp_ms(event["context"]["event_timestamp"])
        assert timestamp is not None
        assert NOW_MS - HOUR_MS <= timestamp <= NOW_MS
    compiled = AppConfig().compile()
    assert all(isinstance(map_event(e, compiled, NOW_MS), Mapped) for e in events)
    purchases = [e for e in events if e["event_name"] == "purchase"]
    assert all(len(p["items"]) == 3 for p in purchases)
    assert all("__oppref=" in p["context"]["device"]["cookie"] for p in purchases)
    assert all(p["user"]["email"] and p["user"]["phone"] for p in purchases)


def test_invalid_samples_come_out_of_the_mapping_as_errors_or_skips() -> None:
    events = generate_events(2000, seed=4, now_ms=NOW_MS, invalid_ratio=0.2)
    compiled = AppConfig().compile()
    unmapped = sum(not isinstance(map_event(e, compiled, NOW_MS), Mapped) for e in events)
    assert 0.15 * len(events) <= unmapped <= 0.25 * len(events)


_SCHEMA_KEYS = [
    *("event_name", "context", "user", "items", "id", "type", "value", "currency", "url"),
    *("page", "page_type", "event_id", "event_timestamp", "device", "ip", "product", "price"),
    *("quantity", "consent_categories", "partners", "openai", "opt_out", "plan_id", "email"),
]
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
)
_keys = st.sampled_from(_SCHEMA_KEYS) | st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _json_values, max_size=8))
def test_any_json_object_round_trips_exactly(event: dict[str, Any]) -> None:
    (decoded,) = round_trip([event])
    assert not isinstance(decoded, DecodeFailure)
    assert exact(decoded) == exact(event)


# --- dead letters -----------------------------------------------------------------------------


@pytest.mark.parametrize("reason", DLQ_REASONS)
def test_dead_letter_records_round_trip(reason: str) -> None:
    parsed = fastavro.parse_schema(schemas.load_schema(schemas.DEAD_LETTER))
    letter = {
        "value": b"\x00\x00\x00\x00\x01\xff raw bytes",
        "key": None if reason == "undecodable" else b"customer_1",
        "topic": "events",
        "partition": 3,
        "offset": 2**40,
        "timestamp": None if reason == "too_large" else NOW_MS,
        "reason": reason,
        "message": "the API said no",
        "field": "data.currency" if reason == "invalid_value" else None,
        "http_status": 400 if reason == "rejected_by_api" else None,
        "attempts": 2,
        "dead_lettered_at": NOW_MS + 5,
        "pixel_id": "pixel-1",
    }
    stream = io.BytesIO()
    fastavro.schemaless_writer(stream, parsed, letter)
    stream.seek(0)
    assert fastavro.schemaless_reader(stream, parsed, None) == letter
