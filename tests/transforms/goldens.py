"""Loading of `golden_cases.yaml`: each case expanded to (config, now, input line, expectation)."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

GOLDEN_FILE = Path(__file__).with_name("golden_cases.yaml")
ABSENT = "<absent>"


class _Loader(yaml.SafeLoader):
    """Safe YAML plus `!sha256 text` → the hex SHA-256 of the UTF-8 text."""


_Loader.add_constructor(
    "!sha256",
    lambda loader, node: hashlib.sha256(loader.construct_scalar(node).encode()).hexdigest(),
)


@dataclass(frozen=True)
class GoldenCase:
    name: str
    line: bytes
    now: int
    config: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] | None = None
    expect_fields: dict[str, Any] | None = None

    @property
    def config_key(self) -> bytes:
        return orjson.dumps(self.config, option=orjson.OPT_SORT_KEYS)


def _split(dotted: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in dotted.split(".")]


def _set(event: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = _split(dotted)
    node: Any = event
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[last] = value


def _unset(event: dict[str, Any], dotted: str) -> None:
    *parents, last = _split(dotted)
    node: Any = event
    for part in parents:
        node = node[part]
    del node[last]


def load_cases() -> list[GoldenCase]:
    document = yaml.load(GOLDEN_FILE.read_text(encoding="utf-8"), Loader=_Loader)
    cases = []
    for raw in document["cases"]:
        if "line" in raw:
            line = raw["line"].encode()
        else:
            event = copy.deepcopy(raw.get("event") or document["bases"][raw.get("base", "minimal")])
            for dotted, value in (raw.get("set") or {}).items():
                _set(event, dotted, value)
            for dotted in raw.get("unset") or []:
                _unset(event, dotted)
            line = orjson.dumps(event)
        cases.append(
            GoldenCase(
                name=raw["name"],
                line=line,
                now=raw.get("now", document["now"]),
                config=raw.get("config") or {},
                expect=raw.get("expect"),
                expect_fields=raw.get("expect_fields"),
            )
        )
    return cases


def _lookup(output: Any, dotted: str) -> Any:
    node = output
    for part in _split(dotted):
        if isinstance(node, dict):
            if part not in node:
                return ABSENT
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return ABSENT
    return node


def identifiers_in(event: Any) -> list[str]:
    """Raw identity values of an input event: none of them may appear in an error message."""
    if not isinstance(event, dict):
        return []
    found: list[str] = []
    user = event.get("user")
    if isinstance(user, dict):
        found += [v for k, v in user.items() if isinstance(v, str) and k != "consent_categories"]
    context = event.get("context")
    device = context.get("device") if isinstance(context, dict) else None
    if isinstance(device, dict):
        found += [v for k, v in device.items() if isinstance(v, str) and k in ("ip", "cookie")]
    return [value for value in found if len(value.strip()) >= 3]


def parsed_input(case: GoldenCase) -> Any:
    """The input event of a case, or None for a line that is not JSON."""
    try:
        return orjson.loads(case.line)
    except orjson.JSONDecodeError:
        return None


def check(case: GoldenCase, output: dict[str, Any]) -> None:
    """Assert `output` (one `map` output object) is what `case` expects."""
    if case.expect is not None:
        expected = copy.deepcopy(case.expect)
        if "error" in expected and "error" in output:
            message = output["error"].get("message")
            assert isinstance(message, str), output
            assert message, output
            for identifier in identifiers_in(parsed_input(case)):
                assert identifier not in message, (case.name, message)
            expected["error"].setdefault("message", message)
        assert output == expected, f"{case.name}: {output}"
    if case.expect_fields is not None:
        assert "error" not in output, f"{case.name}: {output}"
        assert "skipped" not in output, f"{case.name}: {output}"
        for dotted, value in case.expect_fields.items():
            assert _lookup(output, dotted) == value, f"{case.name}: {dotted} in {output}"
