"""The chart renders valid, secure manifests whose config file is what the values say."""

from __future__ import annotations

import argparse
import base64
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from consumer.cli import build_parser
from consumer.config import AppConfig, load_config
from tests.helm.helm_render import (
    CHART_DIR,
    CONFIG_PATH,
    FULLNAME,
    NAMESPACE,
    ROOT,
    SCENARIO_FILES,
    SECRET_DIR,
    Render,
    Rendered,
    merged,
    scenario_id,
    scenario_values,
)

SCENARIOS = [None, *SCENARIO_FILES]
SCENARIO_IDS = [scenario_id(s) for s in SCENARIOS]
CHART_META = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema shipped.
KUBE_VERSIONS = (
    re.findall(r"\d+\.\d+", CHART_META["kubeVersion"])[0],
    kubernetes_validate.latest_version(),
)
# Config keys this chart renders that the config model gains in the same change (proposed to
# the owner of consumer/config.py): files of secret client settings, kept out of the ConfigMap.
PROPOSED_KEYS = (("kafka", "secret_settings_file"), ("schema", "registry_settings_file"))


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = _object({"name": {"type": "string"}, "labels": _STRING_MAP}, ["name", "labels"])
# No CRD schemas ship offline: the fields the operators need, with the types they accept.
CUSTOM_RESOURCES: dict[str, dict[str, Any]] = {
    "keda.sh": _object(
        {
            "kind": {"const": "ScaledObject"},
            "metadata": _METADATA,
            "spec": _object(
                {
                    "scaleTargetRef": _object(
                        {
                            "apiVersion": {"const": "apps/v1"},
                            "kind": {"enum": ["Deployment", "StatefulSet"]},
                            "name": {"type": "string", "minLength": 1},
                        },
                        ["kind", "name"],
                    ),
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "pollingInterval": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": _object(
                            {
                                "type": {"const": "kafka"},
                                "metadata": _object(
                                    {
                                        "bootstrapServers": {"type": "string", "minLength": 1},
                                        "consumerGroup": {"type": "string", "minLength": 1},
                                    },
                                    ["bootstrapServers", "consumerGroup", "lagThreshold"],
                                )
                                | {"additionalProperties": {"type": "string"}},
                                "authenticationRef": _object(
                                    {"name": {"type": "string"}, "kind": {"type": "string"}},
                                    ["name"],
                                ),
                            },
                            ["type", "metadata"],
                        ),
                    },
                },
                ["scaleTargetRef", "triggers"],
            ),
        },
        ["kind", "metadata", "spec"],
    ),
    "monitoring.coreos.com": _object(
        {
            "kind": {"const": "ServiceMonitor"},
            "metadata": _METADATA,
            "spec": _object(
                {
                    "selector": _object({"matchLabels": _STRING_MAP}, ["matchLabels"]),
                    "namespaceSelector": _object(
                        {"matchNames": {"type": "array", "items": {"type": "string"}}},
                        ["matchNames"],
                    ),
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": _object(
                            {
                                "port": {"type": "string"},
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"},
                                "scrapeTimeout": {
                                    "type": "string",
                                    "pattern": "^([0-9]+(ms|s|m|h))+$",
                                },
                            },
                            ["port", "path"],
                        ),
                    },
                },
                ["selector", "endpoints"],
            ),
        },
        ["kind", "metadata", "spec"],
    ),
}


def pod_name(rendered: Rendered) -> str:
    workload = rendered.workload
    if workload["kind"] == "StatefulSet":
        return f"{workload['metadata']['name']}-0"
    return f"{workload['metadata']['name']}-7d4b9c6f5-x2x9q"


def container_env(template: dict[str, Any], pod: str) -> dict[str, str]:
    """The container's literal env as Kubernetes resolves it: downward-API POD_NAME, then
    `$(VAR)` references to variables defined earlier in the list."""
    resolved: dict[str, str] = {}
    for var in template["spec"]["containers"][0].get("env", []):
        if var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            resolved[var["name"]] = pod
        elif "value" in var:
            resolved[var["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: resolved.get(m.group(1), m.group(0)),
                var["value"],
            )
    return resolved


def model_has(section: str, key: str) -> bool:
    model = type(getattr(AppConfig(), "schema_" if section == "schema" else section))
    return key in model.model_fields


def load_rendered_config(
    rendered: Rendered, tmp_path: Path, environ: dict[str, str] | None = None
) -> AppConfig:
    """Load the rendered config file with `consumer.config.load_config`, as the pod would."""
    data = yaml.safe_load(rendered.config_text)
    for section, key in PROPOSED_KEYS:
        if key in data[section] and not model_has(section, key):
            assert data[section].pop(key).startswith(f"{SECRET_DIR}/")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path, environ or {})


def assert_subset(expected: Any, actual: Any, where: str = "config") -> None:
    """Every value given in `expected` is in `actual` (numbers compare as numbers)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing"
            assert_subset(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), where
        assert len(expected) == len(actual), where
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_subset(e, a, f"{where}[{index}]")
    else:
        assert expected == actual, f"{where}: {expected!r} != {actual!r}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_lint_is_clean(scenario: Path | None) -> None:
    report = helm.lint(
        CHART_DIR, scenario_values(scenario), strict=True, kube_version=f"v{KUBE_VERSIONS[0]}.0"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert problems == []


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_manifests_validate_against_kubernetes_schemas(
    render: Render, scenario: Path | None
) -> None:
    rendered = render(scenario_values(scenario))
    for manifest in rendered.manifests:
        group = manifest["apiVersion"].rpartition("/")[0]
        if group in CUSTOM_RESOURCES:
            jsonschema.validate(manifest, CUSTOM_RESOURCES[group])
        else:
            for version in KUBE_VERSIONS:
                kubernetes_validate.validate(manifest, version, strict=True)
        assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == "capi"
        assert len(manifest["metadata"]["name"]) <= 63


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_pods_are_locked_down(render: Render, scenario: Path | None) -> None:
    rendered = render(scenario_values(scenario))
    templates = rendered.pod_templates()
    assert templates
    for template in templates:
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["runAsGroup"] == 10001
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = spec["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["privileged"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]["memory"]
        # A writable /tmp is the only writable path.
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert "readOnly" not in mounts["/tmp"]
        assert mounts["/etc/capi-consumer"]["readOnly"] is True
    service_account = rendered.one("ServiceAccount")
    assert service_account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_probes_and_service_use_the_observability_port(
    render: Render, scenario: Path | None
) -> None:
    rendered = render(scenario_values(scenario))
    port = yaml.safe_load(rendered.config_text)["observability"]["port"]
    (container,) = rendered.workload["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    service = rendered.one("Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = rendered.workload["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert rendered.workload["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_termination_grace_covers_the_flush(render: Render, scenario: Path | None) -> None:
    rendered = render(scenario_values(scenario))
    delivery = yaml.safe_load(rendered.config_text)["delivery"]
    expected = math.ceil(delivery["shutdown_grace_s"]) + math.ceil(delivery["timeout_s"]) + 10
    for template in rendered.pod_templates():
        assert template["spec"]["terminationGracePeriodSeconds"] == expected


def test_termination_grace_follows_the_values(render: Render, minimal_values: dict) -> None:
    fractional = merged(minimal_values, {"config": {"delivery": {"shutdown_grace_s": 20.5}}})
    spec = render(fractional).workload["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 21 + 30 + 10
    explicit = render({**minimal_values, "terminationGracePeriodSeconds": 300})
    assert explicit.workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 300
    with pytest.raises(helm.HelmError, match=r"must exceed config\.delivery\.shutdown_grace_s"):
        render({**minimal_values, "terminationGracePeriodSeconds": 20})


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_rendered_config_is_what_the_values_say(
    chart: helm.Chart, render: Render, scenario: Path | None, tmp_path: Path
) -> None:
    values = scenario_values(scenario)
    rendered = render(values)
    (container,) = rendered.workload["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["run", "--config", CONFIG_PATH]
    env = container_env(rendered.workload["spec"]["template"], pod_name(rendered))
    config = load_rendered_config(rendered, tmp_path, env)
    assert_subset(chart.merge_values(values)["config"], config.model_dump(by_alias=True))
    assert config.observability.enabled is True
    assert config.capi.api_key is None
    secret = chart.merge_values(values)["secret"]
    key_name = secret["existingSecretKeys"]["apiKey"] if secret["existingSecret"] else "api-key"
    assert config.capi.api_key_file == f"{SECRET_DIR}/{key_name}"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["secrets"] == SECRET_DIR
    assert mounts["config"] == str(Path(CONFIG_PATH).parent)
    if scenario is not None:
        # Every ci scenario is a complete install: it passes the checks `run` makes at start.
        key_file = tmp_path / "api-key"
        key_file.write_text("sk-test", encoding="utf-8")
        environ = {**env, "CAPI_CONSUMER_CAPI__API_KEY_FILE": str(key_file)}
        # The mounted secret files exist only in the pod: stand in for them.
        for section, key in PROPOSED_KEYS:
            if getattr(getattr(config, "schema_" if section == "schema" else section), key):
                stand_in = tmp_path / f"{section}-{key}.yaml"
                stand_in.write_text("{}", encoding="utf-8")
                environ[f"CAPI_CONSUMER_{section.upper()}__{key.upper()}"] = str(stand_in)
        routed = load_rendered_config(rendered, tmp_path, environ)
        routed.require_for_run()


def test_proposed_secret_file_keys_exist_in_the_config_model() -> None:
    missing = [f"{s}.{k}" for s, k in PROPOSED_KEYS if not model_has(s, k)]
    if missing:
        pytest.xfail(f"consumer/config.py does not have {missing} yet (proposed in the report)")
    assert not missing


def test_secrets_stay_out_of_the_configmap(render: Render) -> None:
    values = scenario_values(CHART_DIR / "ci" / "sasl-ssl-registry-values.yaml")
    rendered = render(values)
    secret = rendered.one("Secret")
    files = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert files["api-key"] == values["secret"]["apiKey"]
    assert yaml.safe_load(files["kafka-settings.yaml"]) == values["secret"]["kafkaSettings"]
    assert yaml.safe_load(files["registry-settings.yaml"]) == values["secret"]["registrySettings"]
    assert files["fr-api-key"] == values["secret"]["extraKeys"]["fr-api-key"]
    config = yaml.safe_load(rendered.config_text)
    assert config["kafka"]["secret_settings_file"] == f"{SECRET_DIR}/kafka-settings.yaml"
    assert config["schema"]["registry_settings_file"] == f"{SECRET_DIR}/registry-settings.yaml"
    haystack = yaml.safe_dump([m for m in rendered.manifests if m != secret]) + rendered.notes
    secret_values = [
        values["secret"]["apiKey"],
        values["secret"]["kafkaSettings"]["sasl.password"],
        values["secret"]["registrySettings"]["basic.auth.user.info"],
        *values["secret"]["extraKeys"].values(),
    ]
    for secret_value in secret_values:
        assert secret_value not in haystack


def test_existing_secret_is_mounted_not_created(render: Render) -> None:
    values = scenario_values(CHART_DIR / "ci" / "existing-secret-values.yaml")
    rendered = render(values)
    assert rendered.maybe("Secret") is None
    volumes = {v["name"]: v for v in rendered.workload["spec"]["template"]["spec"]["volumes"]}
    assert volumes["secrets"]["secret"]["secretName"] == "capi-consumer-credentials"
    config = yaml.safe_load(rendered.config_text)
    assert config["capi"]["api_key_file"] == f"{SECRET_DIR}/openai-capi-key"
    assert config["kafka"]["secret_settings_file"] == f"{SECRET_DIR}/kafka.yaml"
    assert config["schema"]["registry_settings_file"] == f"{SECRET_DIR}/registry.yaml"


def test_no_settings_files_without_secret_settings(render: Render, minimal_values: dict) -> None:
    config = yaml.safe_load(render(minimal_values).config_text)
    assert "secret_settings_file" not in config["kafka"]
    assert "registry_settings_file" not in config["schema"]


def checksums(rendered: Rendered) -> dict[str, str]:
    annotations: dict[str, str] = rendered.workload["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_checksums_roll_pods_only_when_needed(render: Render, minimal_values: dict) -> None:
    base = checksums(render(minimal_values))
    assert set(base) == {"checksum/config", "checksum/secret"}
    config_changed = checksums(
        render(merged(minimal_values, {"config": {"batch": {"linger_ms": 50}}}))
    )
    assert config_changed["checksum/config"] != base["checksum/config"]
    assert config_changed["checksum/secret"] == base["checksum/secret"]
    kafka_secret_changed = checksums(
        render(merged(minimal_values, {"secret": {"kafkaSettings": {"sasl.password": "new"}}}))
    )
    assert kafka_secret_changed["checksum/secret"] != base["checksum/secret"]
    # The service re-reads the API key file: a rotation must not restart anything.
    rotated = render(merged(minimal_values, {"secret": {"apiKey": "sk-rotated"}}))
    assert checksums(rotated) == base
    assert rotated.one("Secret")["data"] != render(minimal_values).one("Secret")["data"]
    other_secret = checksums(render({**minimal_values, "secret": {"existingSecret": "other"}}))
    assert other_secret["checksum/secret"] != base["checksum/secret"]


def test_static_membership_gives_each_pod_a_stable_instance_id(
    render: Render, tmp_path: Path
) -> None:
    values = scenario_values(CHART_DIR / "ci" / "static-membership-values.yaml")
    rendered = render(values)
    assert rendered.maybe("Deployment") is None
    statefulset = rendered.one("StatefulSet")
    assert statefulset["spec"]["serviceName"] == rendered.one("Service")["metadata"]["name"]
    template = statefulset["spec"]["template"]
    for ordinal in range(values["replicaCount"]):
        pod = f"{FULLNAME}-{ordinal}"
        config = load_rendered_config(rendered, tmp_path, container_env(template, pod))
        assert config.kafka.settings["group.instance.id"] == f"{NAMESPACE}.{pod}"
        # The env var adds one key; the file's librdkafka settings stay.
        assert config.kafka.settings["session.timeout.ms"] == 120000


def test_without_static_membership_there_is_no_instance_id(
    render: Render, minimal_values: dict, tmp_path: Path
) -> None:
    rendered = render(minimal_values)
    assert rendered.workload["kind"] == "Deployment"
    env = container_env(rendered.workload["spec"]["template"], pod_name(rendered))
    assert "CAPI_CONSUMER_KAFKA__SETTINGS" not in env
    config = load_rendered_config(rendered, tmp_path, env)
    assert "group.instance.id" not in config.kafka.settings


def test_keda_scales_the_workload_on_group_lag(render: Render) -> None:
    values = scenario_values(CHART_DIR / "ci" / "keda-values.yaml")
    rendered = render(values)
    assert "replicas" not in rendered.workload["spec"]
    scaled = rendered.one("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": rendered.workload["metadata"]["name"],
    }
    assert scaled["spec"]["minReplicaCount"] == 1
    assert scaled["spec"]["maxReplicaCount"] == 12
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["authenticationRef"] == {
        "name": "kafka-trigger-auth",
        "kind": "TriggerAuthentication",
    }
    metadata = trigger["metadata"]
    # KEDA's trigger metadata is a map of strings.
    assert all(isinstance(v, str) for v in metadata.values())
    assert metadata["bootstrapServers"] == values["config"]["kafka"]["bootstrap_servers"]
    assert metadata["consumerGroup"] == "openai-capi-consumer"
    assert metadata["topic"] == "ca-tracking-events"
    assert metadata["lagThreshold"] == "5000"
    assert metadata["activationLagThreshold"] == "100"
    assert rendered.maybe("HorizontalPodAutoscaler") is None


def test_keda_follows_a_statefulset_and_several_topics(render: Render) -> None:
    values = merged(
        scenario_values(CHART_DIR / "ci" / "keda-values.yaml"),
        {"staticMembership": {"enabled": True}, "config": {"kafka": {"topics": ["a", "b"]}}},
    )
    scaled = render(values).one("ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    # Without `topic` KEDA sums the lag of every topic the group consumes.
    assert "topic" not in scaled["spec"]["triggers"][0]["metadata"]


def test_hpa_and_pdb(render: Render) -> None:
    rendered = render(scenario_values(CHART_DIR / "ci" / "hpa-values.yaml"))
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == rendered.workload["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert "replicas" not in rendered.workload["spec"]
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"] == {
        "minAvailable": 1,
        "selector": rendered.workload["spec"]["selector"],
    }


def test_pdb_defaults_and_conflicts(render: Render, minimal_values: dict) -> None:
    pdb = render(minimal_values).one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    with pytest.raises(helm.HelmError, match=r"either maxUnavailable or minAvailable"):
        render({**minimal_values, "podDisruptionBudget": {"minAvailable": 1}})


def test_servicemonitor_and_dashboard(render: Render) -> None:
    values = scenario_values(CHART_DIR / "ci" / "servicemonitor-dashboard-values.yaml")
    rendered = render(values)
    service = rendered.one("Service")
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    assert service["spec"]["ports"][0]["port"] == 9500
    dashboard = rendered.named("ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Kafka"}
    shipped = (CHART_DIR / "dashboards" / "openai-capi-consumer.json").read_text(encoding="utf-8")
    assert yaml.safe_load(dashboard["data"]["openai-capi-consumer.json"]) == yaml.safe_load(shipped)


def backfill_job(rendered: Rendered) -> dict[str, Any]:
    return rendered.one("Job")


def test_backfill_job_runs_the_cli_with_the_values(render: Render) -> None:
    values = scenario_values(CHART_DIR / "ci" / "backfill-values.yaml")
    rendered = render(values)
    job = backfill_job(rendered)
    assert job["metadata"]["name"].startswith(f"{FULLNAME}-backfill-")
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 21600
    (rule, _evictions) = spec["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["values"] == [2, 3, 4]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert rule["onExitCodes"]["containerName"] == container["name"]
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    assert "CAPI_CONSUMER_KAFKA__SETTINGS" not in container_env(spec["template"], "job-pod")
    args = build_parser().parse_args(container["args"])
    assert args == argparse.Namespace(
        command="backfill",
        config=CONFIG_PATH,
        from_offset=None,
        to_offset=None,
        from_time="2026-07-01T00:00:00Z",
        to_time="1782950400000",
        from_beginning=False,
        topics="ca-tracking-events",
        partitions="0,2",
        run_id=None,
        dry_run=False,
        dlq_expired=True,
        max_events_per_second=200.0,
        handler=args.handler,
    )
    # The live workload's selectors never count backfill pods.
    job_labels = spec["template"]["metadata"]["labels"]
    for selector in (
        rendered.one("Service")["spec"]["selector"],
        rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert not selector.items() <= job_labels.items()


def test_backfill_flags_and_offsets(render: Render, minimal_values: dict) -> None:
    backfill = {
        "enabled": True,
        "fromOffset": 1200,
        "toOffset": "ca-tracking-events:0:5000,ca-tracking-events:1:7000",
        "fromBeginning": True,
        "runId": "mapping-fix-2026-07",
        "dryRun": True,
    }
    job = backfill_job(render({**minimal_values, "backfill": backfill}))
    args = build_parser().parse_args(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert args.from_offset == "1200"
    assert args.to_offset == backfill["toOffset"]
    assert (args.from_beginning, args.dry_run, args.dlq_expired) == (True, True, False)
    assert args.run_id == "mapping-fix-2026-07"
    assert args.max_events_per_second is None


def test_backfill_job_name_follows_its_content(render: Render, minimal_values: dict) -> None:
    """A Job is immutable: new content must be a new Job, the same content the same Job."""
    first = {**minimal_values, "backfill": {"enabled": True, "fromTime": "2026-07-01"}}
    other = {**minimal_values, "backfill": {"enabled": True, "fromTime": "2026-07-02"}}
    new_image = {**first, "image": {"tag": "0.2.0"}}
    name = backfill_job(render(first))["metadata"]["name"]
    assert backfill_job(render(dict(first)))["metadata"]["name"] == name
    assert backfill_job(render(other))["metadata"]["name"] != name
    assert backfill_job(render(new_image))["metadata"]["name"] != name
    assert render(minimal_values).maybe("Job") is None


def test_notes_warn_about_missing_values_and_explain_exit_codes(
    render: Render, minimal_values: dict
) -> None:
    bare = render({}).notes
    for key in (
        "config.kafka.bootstrap_servers",
        "config.kafka.topics",
        "config.capi.pixel_id",
        "secret.apiKey",
    ):
        assert f"- {key}" in bare
    complete = render(minimal_values).notes
    assert "WARNING" not in complete
    for code in ("0 ", "1 ", "2 ", "3 ", "4 "):
        assert f"\n  {code} " in complete
    assert "grace period 60 s" in complete


def test_chart_app_version_is_the_package_version(render: Render, minimal_values: dict) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    version = pyproject["project"]["version"]
    assert CHART_META["appVersion"] == version
    (container,) = render(minimal_values).workload["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"openai-capi-consumer:{version}"
