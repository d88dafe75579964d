"""docs/mapping.md stays true: its configuration example loads, its example maps as shown."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from consumer.config import load_config
from transforms import Mapped, map_event

DOC = Path(__file__).parents[2] / "docs" / "mapping.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_configuration_example_is_valid(tmp_path: Path) -> None:
    (example,) = _blocks("yaml")
    path = tmp_path / "config.yaml"
    path.write_text(example, encoding="utf-8")
    config = load_config(path, environ={})
    assert config.defaults.action_source == "physical_store"
    assert config.event_mapping["page_view"] is None
    config.compile()


def test_the_complete_example_maps_as_documented() -> None:
    event_text, output_text = _blocks("json")
    outcome = map_event(
        orjson.loads(event_text), load_config(None, environ={}).compile(), 1773892900000
    )
    assert isinstance(outcome, Mapped)
    assert outcome.event == orjson.loads(output_text)
