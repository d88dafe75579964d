"""The Grafana dashboard queries only metrics the service exports, with their real labels."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import Counter, Gauge, Histogram

from consumer.observability.metrics import Metrics
from tests.helm.helm_render import CHART_DIR

DASHBOARD = json.loads(
    (CHART_DIR / "dashboards" / "openai-capi-consumer.json").read_text(encoding="utf-8")
)
SEVEN_DAYS_S = 7 * 24 * 3600
METRIC_NAME = re.compile(r"\bcapi_consumer_[a-z0-9_]+")
GROUPING = re.compile(r"\b(?:by|without|ignoring|on)\s*\(([^)]*)\)")
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"namespace", "pod", "job", "instance", "service", "container"}


def exported_series() -> dict[str, set[str]]:
    """Every series name `/metrics` can show → its labels (counters get `_total`, histograms
    `_bucket`/`_sum`/`_count`)."""
    series: dict[str, set[str]] = {}
    for collector in vars(Metrics()).values():
        if not isinstance(collector, Counter | Gauge | Histogram):
            continue
        (family,) = collector.describe()
        # prometheus-client keeps a collector's label names only on this attribute.
        labels = set(collector._labelnames)
        if isinstance(collector, Counter):
            series[f"{family.name}_total"] = labels
        elif isinstance(collector, Histogram):
            series[f"{family.name}_bucket"] = labels | {"le"}
            series[f"{family.name}_sum"] = labels
            series[f"{family.name}_count"] = labels
        else:
            series[family.name] = labels
    return series


SERIES = exported_series()


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries() -> Iterator[tuple[str, str]]:
    for panel in panels(DASHBOARD):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]["query"]


def test_the_service_exports_the_documented_series() -> None:
    assert "capi_consumer_events_delivered_total" in SERIES
    assert "capi_consumer_request_duration_seconds_bucket" in SERIES
    assert SERIES["capi_consumer_delivered_identity_total"] == {"pixel", "field"}


@pytest.mark.parametrize(("where", "expr"), list(queries()))
def test_every_query_names_exported_metrics_and_labels(where: str, expr: str) -> None:
    names = set(METRIC_NAME.findall(expr))
    assert names, f"{where}: no capi_consumer_ metric in {expr}"
    assert names <= set(SERIES), f"{where}: not exported: {names - set(SERIES)}"
    known_labels = TARGET_LABELS.union(*(SERIES[name] for name in names))
    for group in GROUPING.findall(expr):
        labels = {label.strip() for label in group.split(",") if label.strip()}
        assert labels <= known_labels, f"{where}: unknown labels {labels - known_labels}"


def test_panels_are_well_formed() -> None:
    ids = [panel["id"] for panel in panels(DASHBOARD)]
    assert len(ids) == len(set(ids))
    for panel in panels(DASHBOARD):
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            # A legend can only show labels the aggregation keeps.
            kept = {
                label.strip()
                for group in GROUPING.findall(target["expr"])
                for label in group.split(",")
            }
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            assert legend <= kept, panel["title"]
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert variables == {"datasource", "namespace", "job"}
    assert DASHBOARD["uid"] == "openai-capi-consumer"


def panel_exprs(title_part: str) -> list[str]:
    found = [p for p in panels(DASHBOARD) if title_part in p["title"].lower()]
    assert found, f"no panel titled *{title_part}*"
    return [t["expr"] for p in found for t in p.get("targets", [])]


def test_the_panels_operators_need_are_there() -> None:
    throughput = " ".join(panel_exprs("throughput"))
    assert "capi_consumer_events_consumed_total" in throughput
    assert "capi_consumer_events_delivered_total" in throughput
    assert "capi_consumer_lag_events" in " ".join(panel_exprs("lag by partition"))
    assert "by (status)" in " ".join(panel_exprs("http status"))
    assert "by (reason)" in " ".join(panel_exprs("dead-lettered by reason"))
    coverage = " ".join(panel_exprs("identity coverage"))
    assert "capi_consumer_delivered_identity_total" in coverage
    assert "/ ignoring (field) group_left" in coverage


def test_oldest_event_age_is_drawn_against_the_seven_day_limit() -> None:
    (panel,) = [p for p in panels(DASHBOARD) if "7-day limit" in p["title"]]
    assert "capi_consumer_oldest_undelivered_event_age_seconds" in panel["targets"][0]["expr"]
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["unit"] == "s"
    steps = defaults["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": SEVEN_DAYS_S}
    assert defaults["custom"]["thresholdsStyle"]["mode"].startswith("line")
