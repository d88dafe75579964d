"""The chart's README values table is what `make chart-docs` generates from values.yaml."""

from __future__ import annotations

from scripts.chart_docs import CHART_DIR, documented_rows, generated_readme


def test_the_readme_is_generated_from_values_yaml() -> None:
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    assert readme == generated_readme(), "helm README out of date: run `make chart-docs`"


def test_rows_follow_the_helm_docs_comments() -> None:
    values = """\
# Section comments are not rendered.
image:
  # -- Image repository.
  repository: app
  # -- Image tag,
  # continued.
  # @default -- the chart's appVersion
  tag: ""
undocumented: 1
# -- Extra labels | with a pipe.
labels: {a: "1"}
"""
    rows = documented_rows(values)
    assert [(r.key, r.type, r.default, r.description) for r in rows] == [
        ("image.repository", "string", '`"app"`', "Image repository."),
        ("image.tag", "string", "the chart's appVersion", "Image tag, continued."),
        ("labels", "object", '`{"a":"1"}`', "Extra labels | with a pipe."),
    ]
