"""`capi-consumer map --diff`: the golden cases mapped with the default and a re-pointed mapping.

The oracle is `capi-consumer map` itself, run once per configuration: the lines reported are
exactly those whose outputs differ, and applying a line's changes to the old output gives the
new one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumer.cli.map_diff import changes, line_diff
from tests.consumer.cli.test_map import run_map
from tests.transforms.goldens import load_cases

REPOINTED = """\
field_mapping:
  data.amount: revenue
  data.contents.X.amount: items.X.price
  id: id
event_mapping:
  page_view: null
"""
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parts(path: str) -> list[str | int]:
    return [name or int(index) for name, index in _PART.findall(path)]


def apply(old: Any, found: list[dict[str, Any]]) -> Any:
    """`old` with `found` applied: the inverse of `changes`."""
    if found and found[0]["path"] == "":
        return found[0]["new"]
    result = orjson.loads(orjson.dumps(old))
    removals = []
    for change in found:
        *parents, last = _parts(change["path"])
        node = result
        for part in parents:
            node = node[part]
        if "new" not in change:
            removals.append((node, last))
        elif isinstance(node, list) and last == len(node):
            node.append(change["new"])
        else:
            node[last] = change["new"]
    for node, last in reversed(removals):
        del node[last]
    return result


def test_map_diff_on_the_golden_cases(tmp_path: Path) -> None:
    cases = [case for case in load_cases() if not case.config]
    now = cases[0].now
    cases = [case for case in cases if case.now == now]
    stdin = b"\n".join(case.line for case in cases) + b"\n"
    new_config = tmp_path / "new.yaml"
    new_config.write_text(REPOINTED, encoding="utf-8")
    old_config = tmp_path / "old.yaml"
    old_config.write_text("{}\n", encoding="utf-8")

    old_lines = run_map("--now", str(now), stdin=stdin).stdout.splitlines()
    new_lines = run_map("--config", str(new_config), "--now", str(now), stdin=stdin)
    new_lines = new_lines.stdout.splitlines()
    result = run_map("--diff", str(new_config), "--now", str(now), stdin=stdin)
    assert result.returncode == 0, result.stderr
    reported = [orjson.loads(line) for line in result.stdout.splitlines()]

    differing = [
        number
        for number, (old, new) in enumerate(zip(old_lines, new_lines, strict=True), start=1)
        if orjson.loads(old) != orjson.loads(new)
    ]
    assert [line["line"] for line in reported] == differing
    assert len(differing) >= 10  # the re-pointing touches many cases
    for line in reported:
        old = orjson.loads(old_lines[line["line"] - 1])
        new = orjson.loads(new_lines[line["line"] - 1])
        assert apply(old, line["changes"]) == new, line
        assert line["id"] == new.get("id", old.get("id"))

    summary = orjson.loads(result.stderr)
    assert summary["lines_read"] == len(cases)
    assert summary["lines_changed"] == len(differing)
    by_path: dict[str, int] = {}
    for line in reported:
        for change in line["changes"]:
            key = re.sub(r"\[\d+\]", "[]", change["path"])
            by_path[key] = by_path.get(key, 0) + 1
    assert summary["changes_by_path"] == by_path
    assert "data.contents[].amount" in by_path
    assert "" in by_path  # page_view now skipped: an outcome change

    same = run_map("--diff", str(old_config), "--now", str(now), stdin=stdin)
    assert same.returncode == 0
    assert same.stdout == b""
    assert orjson.loads(same.stderr) == {
        "lines_read": len(cases),
        "lines_changed": 0,
        "changes_by_path": {},
    }


def test_changes_name_paths_and_omit_absent_sides() -> None:
    old = {"data": {"amount": 2599, "contents": [{"amount": 2599}, {"id": "b"}]}, "x": 1}
    new = {"data": {"amount": 2399, "contents": [{"amount": 1000}]}, "x": True}
    assert list(changes(old, new)) == [
        {"path": "data.amount", "old": 2599, "new": 2399},
        {"path": "data.contents[0].amount", "old": 2599, "new": 1000},
        {"path": "data.contents[1]", "old": {"id": "b"}},
        {"path": "x", "old": 1, "new": True},
    ]
    assert list(changes({}, {"user": {"countries": ["US"]}})) == [
        {"path": "user", "new": {"countries": ["US"]}}
    ]
    skip = {"skipped": {"reason": "unmapped_event", "event_name": "x"}}
    assert line_diff({"id": "1"}, skip) == [{"path": "", "old": {"id": "1"}, "new": skip}]


@pytest.mark.parametrize("config", ["event_mapping:\n  purchase: order_completed\n", "nope: 1\n"])
def test_map_diff_bad_new_config_exits_2(tmp_path: Path, config: str) -> None:
    path = tmp_path / "new.yaml"
    path.write_text(config, encoding="utf-8")
    result = run_map("--diff", str(path), stdin=b"{}\n")
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().startswith("configuration error: ")
