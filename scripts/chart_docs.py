"""The chart's README values table, from the `# --` comments in values.yaml (the helm-docs
convention; the helm-docs binary is not available here, so this is its subset the chart uses).

A key is documented by a `# -- text` comment right above it (continued by the `#` lines that
follow); `# @default -- text` replaces the rendered default. Other comments are not rendered.

    python -m scripts.chart_docs           # rewrite helm/openai-capi-consumer/README.md
    python -m scripts.chart_docs --check   # exit 1 when the README is not up to date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parents[1] / "helm" / "openai-capi-consumer"
VALUES_HEADING = "## Values"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")
_COMMENT = re.compile(r"^ *# ?(?P<text>.*)$")


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    type: str
    default: str
    description: str


def documented_rows(values_text: str) -> list[Row]:
    """One row per documented key, in file order."""
    values = yaml.safe_load(values_text)
    rows = []
    parents: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    description: list[str] | None = None  # the `# --` comment being read, if any
    default_text: str | None = None
    for line in values_text.splitlines():
        comment = _COMMENT.match(line)
        if comment is not None:
            text = comment.group("text")
            if text.startswith("-- "):
                description, default_text = [text[3:]], None
            elif text.startswith("@default -- ") and description is not None:
                default_text = text[len("@default -- ") :]
            elif description is not None:
                description.append(text)
            continue
        key = _KEY.match(line)
        if key is None:
            if line.strip() and not line.lstrip().startswith("- "):
                description = None  # a comment belongs to the key right below it
            continue
        indent = len(key.group("indent"))
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = [name for _, name in parents] + [key.group("key")]
        parents.append((indent, key.group("key")))
        if description is not None:
            value = _lookup(values, path)
            rows.append(
                Row(
                    ".".join(path),
                    _type_of(value),
                    default_text if default_text is not None else f"`{_render(value)}`",
                    " ".join(part.strip() for part in description if part.strip()),
                )
            )
        description = None
    return rows


def _lookup(values: Any, path: list[str]) -> Any:
    for name in path:
        values = values[name]
    return values


def _type_of(value: Any) -> str:
    # helm-docs' names; a null default is documented as a string.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    return "string"


def _render(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def values_table(rows: list[Row]) -> str:
    lines = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for row in rows:
        cells = (f"`{row.key}`", row.type, row.default, row.description)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def generated_readme(chart_dir: Path = CHART_DIR) -> str:
    """The README as it should be: its text up to `## Values`, then the table."""
    readme = (chart_dir / "README.md").read_text(encoding="utf-8")
    head, heading, _ = readme.partition(f"\n{VALUES_HEADING}\n")
    if not heading:
        raise SystemExit(f"{chart_dir / 'README.md'} has no '{VALUES_HEADING}' heading")
    rows = documented_rows((chart_dir / "values.yaml").read_text(encoding="utf-8"))
    intro = "Generated from the `# --` comments in values.yaml by `make chart-docs`; do not edit."
    return f"{head}\n{VALUES_HEADING}\n\n{intro}\n\n{values_table(rows)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the README differs")
    args = parser.parse_args(argv)
    path = CHART_DIR / "README.md"
    wanted = generated_readme()
    if path.read_text(encoding="utf-8") == wanted:
        return 0
    if args.check:
        print(f"{path} is not up to date: run `make chart-docs`", file=sys.stderr)
        return 1
    path.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
