"""Properties of the transform: total (an outcome for any input), deterministic, pure."""

from __future__ import annotations

import copy
import hashlib
from typing import Any
from unittest import mock

import orjson
from hypothesis import given
from hypothesis import strategies as st

from consumer.cli.map import map_lines
from tests.transforms.property_support import (
    CONFIGURED,
    CONFIGURED_SETTINGS,
    DEFAULT,
    NOW,
    PROFILE,
    assert_well_formed,
    ca_events,
    json_values,
    rich_events,
)
from transforms import CompiledMapping, MappingSettings, identity, map_event, paths
from transforms import compiled as compiled_module
from transforms.paths import PathReader, get_path


@PROFILE
@given(event=json_values)
def test_any_json_value_gives_an_outcome(event: Any) -> None:
    for compiled in (DEFAULT, CONFIGURED):
        assert_well_formed(map_event(event, compiled, NOW))


@PROFILE
@given(
    event=st.dictionaries(
        st.sampled_from(
            [
                "event_name",
                "context",
                "user",
                "items",
                "value",
                "currency",
                "partners",
                "url",
                "type",
            ]
        ),
        json_values,
    )
)
def test_any_json_object_with_ca_keys_gives_an_outcome(event: dict[str, Any]) -> None:
    for compiled in (DEFAULT, CONFIGURED):
        assert_well_formed(map_event(event, compiled, NOW))


@PROFILE
@given(event=ca_events)
def test_mapping_is_deterministic_and_leaves_the_input_alone(event: dict[str, Any]) -> None:
    before = copy.deepcopy(event)
    first = map_event(event, DEFAULT, NOW)
    assert event == before
    assert map_event(copy.deepcopy(event), DEFAULT, NOW) == first


@PROFILE
@given(
    value=st.one_of(st.emails(), st.text(max_size=30)),
    normalize=st.sampled_from(
        [
            identity.normalize_email,
            identity.normalize_phone,
            identity.normalize_external_id,
            identity.normalize_name,
        ]
    ),
)
def test_hashing_is_deterministic_and_normalization_idempotent(value: str, normalize: Any) -> None:
    normalized = normalize(value)
    if normalized is None:
        return
    assert normalize(normalized) == normalized
    digest = identity.sha256_hex(normalized)
    assert digest == hashlib.sha256(normalized.encode()).hexdigest()
    assert digest == identity.sha256_hex(normalize(value))


@PROFILE
@given(lines=st.lists(st.binary(max_size=40) | json_values.map(orjson.dumps), max_size=8))
def test_the_line_handler_gives_one_json_line_per_line(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ") for line in lines]
    outputs = map_lines(lines, DEFAULT, NOW)
    assert len(outputs) == len(lines)
    for output in outputs:
        assert b"\n" not in output
        assert isinstance(orjson.loads(output), dict)


_paths = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map(tuple)


@PROFILE
@given(paths=st.lists(_paths, min_size=1, max_size=6), event=json_values)
def test_the_path_reader_reads_what_get_path_reads(
    paths: list[tuple[str, ...]], event: Any
) -> None:
    reader = PathReader(paths)
    values = reader.read(event)
    for path in paths:
        assert values[reader.index[path]] == get_path(event, path)


def _as_mypyc_builds(settings: MappingSettings) -> CompiledMapping:
    """`settings` compiled with the readers a mypyc build uses (loops over tables, which the
    interpreter runs here) instead of the generated code."""
    with (
        mock.patch.object(paths, "COMPILED", True),
        mock.patch.object(compiled_module, "COMPILED", True),
    ):
        return settings.compile()


_NATIVE_DEFAULT = _as_mypyc_builds(MappingSettings())
_NATIVE_CONFIGURED = _as_mypyc_builds(CONFIGURED_SETTINGS)


@PROFILE
@given(event=ca_events | rich_events | json_values)
def test_the_readers_of_a_mypyc_build_map_as_the_generated_ones(event: Any) -> None:
    for generated, native in ((DEFAULT, _NATIVE_DEFAULT), (CONFIGURED, _NATIVE_CONFIGURED)):
        assert map_event(event, native, NOW) == map_event(event, generated, NOW)


@PROFILE
@given(
    paths_read=st.lists(_paths, min_size=1, max_size=6),
    outputs=st.lists(st.lists(_paths, max_size=3), max_size=4),
    event=json_values,
)
def test_the_table_reader_reads_what_the_generated_one_reads(
    paths_read: list[tuple[str, ...]], outputs: list[list[tuple[str, ...]]], event: Any
) -> None:
    with mock.patch.object(paths, "COMPILED", True):
        tables, tables_selecting = PathReader(paths_read), PathReader(paths_read, outputs)
    generated, selecting = PathReader(paths_read), PathReader(paths_read, outputs)
    assert tables.read(event) == generated.read(event)
    assert tables_selecting.read(event) == selecting.read(event)
    values = generated.read(event) + (None,) * (len(selecting.index) - len(generated.index))
    assert tables_selecting.select(values) == selecting.select(values)
