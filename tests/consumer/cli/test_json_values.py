"""`map`'s JSON reader (consumer/cli/_json_values.c): whatever line it accepts, it reads exactly
as orjson then the path readers do; what it declines, `map` reads that reference way."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.avro.readers import self_check_events
from consumer.cli.json_values import projector, tree
from consumer.cli.map import map_lines
from tests.consumer.cli.json_lines import disagreement, line, mutate, reference
from tests.transforms.goldens import load_cases
from transforms import CompiledMapping, MappingSettings

pytest.importorskip("consumer.cli._json_values", reason="the C extension was not built")

NOW = 1_773_892_900_000
DEFAULT = MappingSettings().compile()
PROJECT = projector(DEFAULT)
CASES = load_cases()


def _project(compiled: CompiledMapping) -> object:
    project = projector(compiled)
    assert project is not None
    return project


def test_realistic_events_are_read_without_orjson() -> None:
    """The fast path is taken: every sample event is accepted, and read as orjson would."""
    for event in self_check_events():
        data = orjson.dumps(event)
        assert PROJECT is not None
        assert PROJECT(data) is not None
        assert disagreement(PROJECT, DEFAULT, data) is None


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_golden_lines_and_their_mutations(case: object) -> None:
    compiled = MappingSettings.model_validate(case.config).compile()  # type: ignore[attr-defined]
    project = _project(compiled)
    data: bytes = case.line  # type: ignore[attr-defined]
    assert disagreement(project, compiled, data) is None
    rng = random.Random(data)
    for _ in range(200):
        mutated = mutate(rng, data)
        assert disagreement(project, compiled, mutated) is None, mutated


@settings(max_examples=3000, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_random_lines_and_their_mutations(seed: int) -> None:
    rng = random.Random(seed)
    data = line(rng)
    assert disagreement(PROJECT, DEFAULT, data) is None, data
    assert disagreement(PROJECT, DEFAULT, mutate(rng, data)) is None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b'{"event_name": "a", "event_name": "b"}', "a path's key given twice"),
        (b'{"context": {"event_id": "a"}, "context": 1}', "a path's object given twice"),
        (b'{"ev\\u0065nt_name": "purchase"}', "an escaped key"),
        (b'{"event_name": 12345678901234567890}', "more than 18 digits"),
        (b'{"other": 1e999}', "a float that overflows"),
        (b'{"event_name": "\\ud800"}', "a lone surrogate"),
        (b'["not", "an", "object"]', "not an object"),
        (b'{"event_name": "a"} x', "trailing bytes"),
        (b'{"context":' * 300 + b"1" + b"}" * 300, "nesting deeper than 256"),
    ],
)
def test_what_it_declines_is_mapped_the_reference_way(data: bytes, why: str) -> None:
    assert PROJECT is not None
    assert PROJECT(data) is None, why
    assert map_lines([data], DEFAULT, NOW, PROJECT) == map_lines([data], DEFAULT, NOW)


def test_keys_given_twice_off_the_paths_keep_the_fast_path() -> None:
    data = b'{"event_name": "purchase", "other": 1, "other": {"x": 2}, "context": {}}'
    assert PROJECT is not None
    assert PROJECT(data) is not None
    assert disagreement(PROJECT, DEFAULT, data) is None


def test_values_kept_whole_and_items_as_tuples() -> None:
    data = (
        b'{"event_name":"purchase","user":{"consent_categories":["a",{"b":[1.5,null]}]},'
        b'"items":[{"product":{"id":"p1"},"quantity":2},7,[1],null]}'
    )
    assert PROJECT is not None
    values = PROJECT(data)
    assert values is not None
    assert repr(values) == repr(reference(DEFAULT, data))
    items = values[DEFAULT.items]
    assert isinstance(items[0], tuple)
    assert items[1:] == [7, [1], None]


def test_paths_that_do_not_fit_leave_map_to_orjson() -> None:
    with pytest.raises(ValueError, match="start of another"):
        tree([("context",), ("context", "page")])
    compiled = MappingSettings.model_validate(
        {"field_mapping": {"custom_event_name": "context"}}
    ).compile()
    assert ("context",) in compiled.event_reader.index
    assert projector(compiled) is None


@settings(max_examples=2000, deadline=None)
@given(
    mantissa=st.integers(0, 10**17),
    fraction_digits=st.integers(1, 17),
    negative=st.booleans(),
    python_float=st.floats(allow_nan=False, allow_infinity=False),
)
def test_numbers_read_as_orjson_reads_them(
    mantissa: int, fraction_digits: int, negative: bool, python_float: float
) -> None:
    """Decimals as prices are written (the reader divides the short ones itself) and floats
    as Python writes them, each read to the same double as orjson's."""
    digits = str(mantissa).rjust(fraction_digits + 1, "0")
    decimal = f"{'-' if negative else ''}{digits[:-fraction_digits]}.{digits[-fraction_digits:]}"
    assert PROJECT is not None
    for text in (decimal, repr(python_float)):
        data = b'{"value": ' + text.encode() + b', "other": ' + text.encode() + b"}"
        values = PROJECT(data)
        assert values is not None, text
        assert repr(values[DEFAULT.amount]) == repr(orjson.loads(text)), text
