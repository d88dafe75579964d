"""The one config: YAML, CAPI_CONSUMER_ overrides, strict keys, masked output, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from consumer.config import KAFKA_CONSUMER_DEFAULTS, ConfigError, load_config

CLI = str(Path(sys.executable).with_name("capi-consumer"))


def test_env_overrides_nested_keys_lists_maps_and_null(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kafka:\n  bootstrap_servers: a:1\n  topics: [x]\ncapi:\n  pixel_id: p\n")
    config = load_config(
        path,
        {
            "CAPI_CONSUMER_KAFKA__BOOTSTRAP_SERVERS": "host:9092",
            "CAPI_CONSUMER_KAFKA__TOPICS": '["a","b"]',
            "CAPI_CONSUMER_KAFKA__SETTINGS": '{"sasl.mechanism":"PLAIN"}',
            "CAPI_CONSUMER_CAPI__PIXEL_ID": "0123",
            "CAPI_CONSUMER_BATCH__MAX_EVENTS": "500",
            "CAPI_CONSUMER_EVENT_MAPPING": '{"page_view": null}',
            "OTHER": "ignored",
        },
    )
    assert config.kafka.bootstrap_servers == "host:9092"
    assert config.kafka.topics == ["a", "b"]
    assert config.kafka.settings == {"sasl.mechanism": "PLAIN"}
    assert config.capi.pixel_id == "0123"  # stays a string: leading zeros kept
    assert config.batch.max_events == 500
    assert config.event_mapping == {"page_view": None}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CAPI_CONSUMER_KAFKA__BOGUS": "1"}, "configuration error: kafka.bogus: unknown key"),
        ({"CAPI_CONSUMER_BATCH__MAX_EVENTS": "1001"}, "configuration error: batch.max_events:"),
        ({"CAPI_CONSUMER_DLQ__MAX_RATIO": "x"}, "configuration error: dlq.max_ratio:"),
    ],
)
def test_bad_values_name_the_key(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, environ)
    assert str(error.value).startswith(message)


def test_run_requirements_report_every_missing_key_sorted() -> None:
    config = load_config(None, {"CAPI_CONSUMER_KAFKA__BOOTSTRAP_SERVERS": "h:1"})
    with pytest.raises(ConfigError) as error:
        config.require_for_run()
    assert str(error.value).splitlines() == [
        "configuration error: capi.api_key: required (or capi.api_key_file)",
        "configuration error: capi.pixel_id: required (or capi.routes)",
        "configuration error: kafka.topics: at least one topic is required",
    ]


def test_every_invalid_value_is_reported_with_its_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("batch:\n  max_events: 5000\nkafka:\n  nope: 1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, {"CAPI_CONSUMER_DLQ__MAX_RATIO": "x"})
    lines = str(error.value).splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "batch.max_events",
        "dlq.max_ratio",
        "kafka.nope",
    ]
    assert lines[1].endswith("(from CAPI_CONSUMER_DLQ__MAX_RATIO)")
    assert "(from" not in lines[0] + lines[2]  # those came from the file


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("CAPI_CONSUMER_CAPI__PIXEL_ID", "capi.pixel_id"),
        ("CAPI_CONSUMER_CAPI__API_KEY", "capi.api_key"),
    ],
)
@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_or_blank_pixel_ids_and_keys_are_configuration_errors(
    name: str, key: str, blank: str, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "kafka:\n  bootstrap_servers: h:1\n  topics: [t]\n"
        "capi:\n  pixel_id: p\n  api_key: k\n"
        "  routes: [{field: site, values: [a], pixel_id: ' ', api_key: ''}]\n"
    )
    env = {**os.environ, name: blank}
    result = subprocess.run(
        [CLI, "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"configuration error: {key}: must not be empty (from {name})",
        "configuration error: capi.routes.0.api_key: must not be empty",
        "configuration error: capi.routes.0.pixel_id: must not be empty",
    ]


def test_secret_settings_file_is_merged_and_checked(tmp_path: Path) -> None:
    secret = tmp_path / "kafka.yaml"
    secret.write_text("sasl.password: hunter2\n")
    config = load_config(
        None,
        {
            "CAPI_CONSUMER_KAFKA__BOOTSTRAP_SERVERS": "h:1",
            "CAPI_CONSUMER_KAFKA__SETTINGS": '{"sasl.username":"u"}',
            "CAPI_CONSUMER_KAFKA__SECRET_SETTINGS_FILE": str(secret),
        },
    )
    assert config.kafka_client_settings() == {
        "bootstrap.servers": "h:1",
        "sasl.username": "u",
        "sasl.password": "hunter2",
    }
    missing = load_config(None, {"CAPI_CONSUMER_KAFKA__SECRET_SETTINGS_FILE": "/nope.yaml"})
    with pytest.raises(ConfigError, match=r"kafka\.secret_settings_file: no such file"):
        missing.kafka_client_settings()


def test_consumer_defaults_bound_the_prefetch_and_yield_to_kafka_settings() -> None:
    defaults = load_config(None, {"CAPI_CONSUMER_KAFKA__BOOTSTRAP_SERVERS": "h:1"})
    assert defaults.kafka_consumer_settings() == {
        "bootstrap.servers": "h:1",
        **KAFKA_CONSUMER_DEFAULTS,
    }
    # A bounded prefetch in bytes, refetched soon once it has room again.
    assert KAFKA_CONSUMER_DEFAULTS["queued.max.messages.kbytes"] == 8192
    assert KAFKA_CONSUMER_DEFAULTS["fetch.queue.backoff.ms"] == 10
    assert KAFKA_CONSUMER_DEFAULTS["fetch.wait.max.ms"] == 50
    tuned = load_config(
        None,
        {
            "CAPI_CONSUMER_KAFKA__BOOTSTRAP_SERVERS": "h:1",
            "CAPI_CONSUMER_KAFKA__SETTINGS": '{"fetch.queue.backoff.ms": 1000}',
        },
    )
    settings = tuned.kafka_consumer_settings()
    assert settings["fetch.queue.backoff.ms"] == 1000
    assert settings["queued.max.messages.kbytes"] == 8192
    assert tuned.kafka_client_settings() == {
        "bootstrap.servers": "h:1",
        "fetch.queue.backoff.ms": 1000,
    }


def test_config_check_masks_secrets_and_exits_2_on_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "capi:\n  api_key: sk-very-secret\nkafka:\n  settings:\n    sasl.password: hunter2\n"
    )
    check = [CLI, "config", "check", "--config", str(path)]
    result = subprocess.run(check, capture_output=True, text=True, check=False)
    assert result.returncode == 2  # by default it checks what `run` needs too
    assert result.stderr.splitlines() == [  # every problem, sorted by key
        "configuration error: capi.pixel_id: required (or capi.routes)",
        "configuration error: kafka.bootstrap_servers: required",
        "configuration error: kafka.topics: at least one topic is required",
    ]
    result = subprocess.run([*check, "--mapping-only"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "sk-very-secret" not in result.stdout
    assert "hunter2" not in result.stdout
    assert "api_key: '***'" in result.stdout
    path.write_text("kafka:\n  nope: 1\n")
    result = subprocess.run(
        [CLI, "config", "check", "--config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "configuration error: kafka.nope: unknown key"
    assert result.stdout == ""


def test_env_map_keys_keep_a_deliberate_case() -> None:
    config = load_config(
        None,
        {
            "CAPI_CONSUMER_EVENT_MAPPING__PURCHASE": "null",  # the usual upper case → purchase
            "CAPI_CONSUMER_EVENT_MAPPING__PageView": "null",  # case-sensitive CA name, kept
            "CAPI_CONSUMER_FIELD_MAPPING__data.contents.X.amount": "items.X.price",
        },
    )
    assert config.event_mapping == {"purchase": None, "PageView": None}
    assert config.field_mapping == {"data.contents.X.amount": "items.X.price"}


def test_the_service_ignores_a_sandbox_section(tmp_path: Path) -> None:
    """The sandbox's settings may share the file; they are not the service's (nor checked by
    it, nor shown by `config check`)."""
    path = tmp_path / "c.yaml"
    path.write_text("capi:\n  pixel_id: p\nsandbox:\n  error_format: xml\n  api_keys: [sb-key]\n")
    assert load_config(path, {}).capi.pixel_id == "p"
    check = [CLI, "config", "check", "--mapping-only", "--config", str(path)]
    result = subprocess.run(check, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "pixel_id: p" in result.stdout
    assert "sandbox" not in result.stdout
    assert "sb-key" not in result.stdout
