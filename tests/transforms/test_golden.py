"""The golden cases (golden_cases.yaml) through `map_event`, the `map` line handler, and the
installed `capi-consumer map` command."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from consumer.cli.json_values import projector
from consumer.cli.map import map_lines, outcome_json
from consumer.config import load_config
from tests.transforms.goldens import GoldenCase, check, load_cases, parsed_input
from transforms import CompiledMapping, Mapped, MappingSettings, map_event
from transforms.outcomes import OPPREF_BIT, USER_FIELDS

CASES = load_cases()
CLI = Path(sys.executable).with_name("capi-consumer")


def _compiled(case: GoldenCase, cache: dict[bytes, CompiledMapping] = {}) -> CompiledMapping:  # noqa: B006
    if case.config_key not in cache:
        cache[case.config_key] = MappingSettings.model_validate(case.config).compile()
    return cache[case.config_key]


def test_case_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))


JSON_CASES = [case for case in CASES if parsed_input(case) is not None]


@pytest.mark.parametrize("case", JSON_CASES, ids=[case.name for case in JSON_CASES])
def test_map_event(case: GoldenCase) -> None:
    outcome = map_event(parsed_input(case), _compiled(case), case.now)
    check(case, outcome_json(outcome))
    if isinstance(outcome, Mapped):  # its shape tells its user fields and oppref
        has = {key for bit, key in enumerate(USER_FIELDS) if outcome.shape >> bit & 1}
        assert has == set(outcome.event.get("user", {}))
        assert bool(outcome.shape & OPPREF_BIT) == ("oppref" in outcome.event)
        assert outcome.shape < OPPREF_BIT << 1
        assert Mapped(outcome.event).shape == outcome.shape  # read back when not given


@pytest.mark.parametrize("reader", ["orjson", "json_values"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_map_line(case: GoldenCase, reader: str, tmp_path: Path) -> None:
    """The `map` line handler, with the config read from a YAML file like the command does;
    lines read by orjson, or by the JSON reader (consumer/cli/_json_values.c) where built."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(case.config), encoding="utf-8")
    compiled = load_config(config_file, environ={}).compile()
    project = None
    if reader == "json_values":
        project = projector(compiled)
        if project is None:
            pytest.skip("consumer/cli/_json_values.c was not built")
    (line,) = map_lines([case.line], compiled, case.now, project)
    check(case, orjson.loads(line))


def run_map(config: dict[str, Any], now: int, lines: list[bytes], tmp_path: Path) -> list[bytes]:
    command = [str(CLI), "map", "--now", str(now)]
    if config:
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        command += ["--config", str(config_file)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAPI_CONSUMER_")}
    result = subprocess.run(
        command,
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return result.stdout.splitlines()


def _cli_groups() -> list[list[GoldenCase]]:
    """Every case without config (one process per clock), plus the first group of each config
    section: a process costs ~0.5 s, and the line handler runs every case in-process anyway."""

    def group_key(case: GoldenCase) -> tuple[bytes, int]:
        return case.config_key, case.now

    groups = [
        list(cases) for _, cases in itertools.groupby(sorted(CASES, key=group_key), key=group_key)
    ]
    chosen, sections_seen = [], set()
    for group in groups:
        sections = frozenset(group[0].config)
        if not sections or not sections <= sections_seen:
            chosen.append(group)
            sections_seen |= sections
    return chosen


@pytest.mark.parametrize(
    "group", _cli_groups(), ids=lambda group: f"{group[0].config or 'default'}@{group[0].now}"
)
def test_cli_gives_the_golden_lines(group: list[GoldenCase], tmp_path: Path) -> None:
    outputs = run_map(group[0].config, group[0].now, [case.line for case in group], tmp_path)
    assert len(outputs) == len(group)
    for case, output in zip(group, outputs, strict=True):
        check(case, orjson.loads(output))
