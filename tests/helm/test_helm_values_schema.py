"""values.schema.json rejects unknown and wrong-typed values, agrees with values.yaml and with the
service's config model, and every value is documented."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml

from consumer.config import AppConfig, Route
from tests.helm.helm_render import CHART_DIR, SCENARIO_FILES, merged, scenario_id, scenario_values
from transforms.event_mapping import CAPI_EVENT_TYPES

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
VALUES_TEXT = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
VALUES = yaml.safe_load(VALUES_TEXT)
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
# Kubernetes objects passed through as they are and validated by Kubernetes itself.
PASS_THROUGH = {"/properties/affinity", "/properties/topologySpreadConstraints/items"}
# Config keys the chart sets itself, or that do not belong in a cluster deployment.
CHART_OWNED_CONFIG = {
    ("capi", "api_key"),
    ("capi", "api_key_file"),
    ("kafka", "secret_settings_file"),
    ("schema", "registry_settings_file"),
    ("observability", "enabled"),
    ("sandbox",),
}

MINIMAL = scenario_values(CHART_DIR / "ci" / "default-values.yaml")
BAD_VALUES = {
    "unknown top-level key": {"replicas": 3},
    "typo in a config key": {"config": {"kafka": {"bootstrap_server": "k:9092"}}},
    "unknown section": {"config": {"kafak": {}}},
    "string for an integer": {"replicaCount": "3"},
    "float for an integer": {"config": {"batch": {"max_events": 10.5}}},
    "above the API's batch limit": {"config": {"batch": {"max_events": 5000}}},
    "string for a list": {"config": {"kafka": {"topics": "ca-tracking-events"}}},
    "unknown CAPI event type": {"config": {"event_mapping": {"purchase": "order_completed"}}},
    "password in the ConfigMap": {"config": {"kafka": {"settings": {"sasl.password": "x"}}}},
    "registry user info in the ConfigMap": {
        "config": {"schema": {"registry_settings": {"basic.auth.user.info": "u:p"}}}
    },
    "privileged port": {"config": {"observability": {"port": 80}}},
    "inspector outside the cluster": {
        "config": {"inspector": {"enabled": True}},
        "service": {"type": "LoadBalancer"},
    },
    "unknown pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "unknown probe field": {"probes": {"liveness": {"path": "/healthz"}}},
    "unknown autoscaler": {"autoscaling": {"mode": "vpa"}},
    "duration without a unit": {"serviceMonitor": {"interval": "30"}},
    "partition as a string": {"backfill": {"partitions": ["0"]}},
    "volume with two sources": {
        "extraVolumes": [{"name": "ca", "secret": {"secretName": "a"}, "emptyDir": {}}]
    },
    "env var without a name": {"extraEnv": [{"value": "x"}]},
    "route without a pixel": {"config": {"capi": {"routes": [{"field": "a", "values": ["b"]}]}}},
    "extra key shadowing the API key file": {"secret": {"extraKeys": {"api-key": "x"}}},
    "unknown security context field": {"securityContext": {"runAsRoot": True}},
}


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize(
    "scenario", [None, *SCENARIO_FILES], ids=[scenario_id(s) for s in [None, *SCENARIO_FILES]]
)
def test_defaults_and_scenarios_pass(chart: helm.Chart, scenario: Path | None) -> None:
    values = scenario_values(scenario)
    VALIDATOR.validate(chart.merge_values(values))
    chart.validate_schema(values)


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_fail_the_schema(chart: helm.Chart, values: dict[str, Any]) -> None:
    combined = merged(MINIMAL, values)
    assert list(VALIDATOR.iter_errors(chart.merge_values(combined)))
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(combined)
    with pytest.raises(helm.HelmValuesError):
        chart.render(combined, name="capi")


def subschemas(node: dict[str, Any], pointer: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield pointer, node
    for keyword in ("properties", "definitions"):
        for name, child in node.get(keyword, {}).items():
            yield from subschemas(child, f"{pointer}/{keyword}/{name}")
    for keyword in ("items", "additionalProperties", "propertyNames", "not"):
        if isinstance(node.get(keyword), dict):
            yield from subschemas(node[keyword], f"{pointer}/{keyword}")
    for keyword in ("anyOf", "oneOf", "allOf"):
        for index, child in enumerate(node.get(keyword, [])):
            yield from subschemas(child, f"{pointer}/{keyword}/{index}")


def test_every_object_is_closed_or_a_typed_map() -> None:
    """`additionalProperties: false` on fixed-key objects; maps type their values."""
    loose = []
    for pointer, node in subschemas(SCHEMA):
        if pointer in PASS_THROUGH or not (node.get("type") == "object" or "properties" in node):
            continue
        extra = node.get("additionalProperties")
        closed = extra is False if "properties" in node else isinstance(extra, dict)
        if not closed:
            loose.append(pointer)
    assert loose == []
    assert {p for p, _ in subschemas(SCHEMA)} >= PASS_THROUGH


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def is_fixed_object(node: dict[str, Any]) -> bool:
    return "properties" in resolve(node)


def leaves(values: Any, schema: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple]:
    """Paths of values.yaml keys helm-docs documents: anything but a fixed-key object."""
    for key, value in values.items():
        child = resolve(schema)["properties"][key]
        if is_fixed_object(child) and isinstance(value, dict) and value:
            yield from leaves(value, child, (*path, key))
        else:
            yield (*path, key)


def test_values_yaml_and_schema_have_the_same_keys() -> None:
    """Every value the schema allows has a documented default, except the optional fields of
    Kubernetes security contexts, which stay unset."""

    def walk(values: dict[str, Any], schema: dict[str, Any], where: str) -> None:
        properties = resolve(schema)["properties"]
        assert set(values) <= set(properties), where
        if not where.startswith(("values.podSecurityContext", "values.securityContext")):
            assert set(values) == set(properties), where
        for key, value in values.items():
            if is_fixed_object(properties[key]) and isinstance(value, dict) and value:
                walk(value, properties[key], f"{where}.{key}")

    walk(VALUES, SCHEMA, "values")


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """values.yaml key path → 0-based line of the key."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, key.value)
                lines[child] = key.start_mark.line
                walk(value, child)

    walk(yaml.compose(text), ())
    return lines


def test_every_value_has_a_helm_docs_comment() -> None:
    text_lines = VALUES_TEXT.splitlines()
    lines = key_lines(VALUES_TEXT)
    undocumented = []
    for path in leaves(VALUES, SCHEMA):
        index = lines[path] - 1
        comment: list[str] = []
        while index >= 0 and text_lines[index].lstrip().startswith("#"):
            comment.insert(0, text_lines[index].strip())
            index -= 1
        if not any(line.startswith("# -- ") for line in comment):
            undocumented.append(".".join(path))
    assert undocumented == []


def test_config_values_are_the_service_defaults() -> None:
    """values.yaml `config` has every key of consumer/config.py (but the chart's own), with the
    same defaults: the chart can configure everything and changes nothing by itself."""
    defaults = AppConfig().model_dump(by_alias=True)
    for path in CHART_OWNED_CONFIG:
        section = defaults
        for key in path[:-1]:
            section = section[key]
        section.pop(path[-1], None)
    assert VALUES["config"] == defaults


def test_route_schema_matches_the_config_model() -> None:
    route = SCHEMA["definitions"]["route"]
    assert set(route["properties"]) == set(Route.model_fields) - {"api_key"}
    required = {name for name, field in Route.model_fields.items() if field.is_required()}
    assert set(route["required"]) == required


def test_event_mapping_targets_are_the_capi_event_types() -> None:
    targets = SCHEMA["properties"]["config"]["properties"]["event_mapping"]
    assert set(targets["additionalProperties"]["enum"]) == {*CAPI_EVENT_TYPES, None}
