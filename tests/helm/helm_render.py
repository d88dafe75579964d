"""Shared by the chart tests: paths, scenario values, and rendered manifests by kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "openai-capi-consumer"
SCENARIO_FILES = sorted(CHART_DIR.glob("ci/*-values.yaml"))
RELEASE = "capi"
NAMESPACE = "tracking"
FULLNAME = f"{RELEASE}-openai-capi-consumer"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
POD_KINDS = (*WORKLOAD_KINDS, "Job")
# Where the chart mounts the config file (the image's default CMD reads it there too).
CONFIG_PATH = "/etc/capi-consumer/config.yaml"
SECRET_DIR = "/var/run/secrets/capi-consumer"


def scenario_values(path: Path | None) -> dict[str, Any]:
    """A ci/*-values.yaml file's values; None is the chart's defaults alone."""
    return {} if path is None else yaml.safe_load(path.read_text(encoding="utf-8"))


def scenario_id(path: Path | None) -> str:
    return "chart-defaults" if path is None else path.name.removesuffix("-values.yaml")


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` deep-merged over `base` (maps merge, everything else replaces)."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


@dataclass(frozen=True)
class Rendered:
    manifests: list[dict[str, Any]]
    notes: str

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests if m["kind"] == kind]

    def maybe(self, kind: str) -> dict[str, Any] | None:
        found = self.all(kind)
        assert len(found) <= 1, f"more than one {kind}"
        return found[0] if found else None

    def one(self, kind: str) -> dict[str, Any]:
        found = self.maybe(kind)
        assert found is not None, f"no {kind} rendered"
        return found

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [m for m in self.all(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind}/{name}, got {len(found)}"
        return found[0]

    @property
    def workload(self) -> dict[str, Any]:
        found = [m for m in self.manifests if m["kind"] in WORKLOAD_KINDS]
        assert len(found) == 1, f"expected one consumer workload, got {len(found)}"
        return found[0]

    def pod_templates(self) -> list[dict[str, Any]]:
        return [m["spec"]["template"] for m in self.manifests if m["kind"] in POD_KINDS]

    @property
    def config_text(self) -> str:
        text: str = self.named("ConfigMap", FULLNAME)["data"]["config.yaml"]
        return text


Render = Callable[[Mapping[str, Any] | None], Rendered]
