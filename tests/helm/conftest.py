"""Render the Helm chart offline with the Helm v4 SDK (helm-python-sdk, no helm binary)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.helm.helm_render import CHART_DIR, NAMESPACE, RELEASE, Render, Rendered, scenario_values


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: helm.Chart) -> Render:
    cache: dict[str, Rendered] = {}

    def run(values: Mapping[str, Any] | None = None) -> Rendered:
        key = json.dumps(values, sort_keys=True)
        if key not in cache:
            files = chart.render(dict(values or {}), name=RELEASE, namespace=NAMESPACE)
            manifests = [
                doc
                for path, text in sorted(files.items())
                if not path.endswith("NOTES.txt")
                for doc in yaml.safe_load_all(text)
                if doc
            ]
            notes = next((t for p, t in files.items() if p.endswith("NOTES.txt")), "")
            cache[key] = Rendered(manifests, notes)
        return cache[key]

    return run


@pytest.fixture(scope="session")
def minimal_values() -> dict[str, Any]:
    """The smallest working install (ci/default-values.yaml)."""
    return scenario_values(CHART_DIR / "ci" / "default-values.yaml")
