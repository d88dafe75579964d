"""The `sandbox` section inside the shared configuration: files, environment, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.cli.sandbox import with_command_line
from consumer.config import ConfigError, masked
from consumer.sandbox.settings import SandboxSettings, load_sandbox_settings
from consumer.sandbox.state import Access
from transforms.capi_rules import STRICT, Rules


def test_the_defaults_are_the_strict_ones() -> None:
    settings = load_sandbox_settings(None, environ={})
    assert settings == SandboxSettings()
    assert settings.rules == STRICT
    assert Access(settings).uses_default_key


def test_environment_overrides_reach_the_sandbox_section() -> None:
    environ = {
        "CAPI_CONSUMER_SANDBOX__FAULTS": '{"poison_ids": ["e7"], "rate": 0.5}',
        "CAPI_CONSUMER_SANDBOX__RULES__ACCEPT_LEGACY_USER_FIELDS": "true",
        "CAPI_CONSUMER_SANDBOX__PIXELS": '[{"pixel_id": "px", "api_keys": ["k"]}]',
    }
    settings = load_sandbox_settings(None, environ=environ)
    assert settings.faults.poison_ids == ["e7"]
    assert settings.faults.rate == 0.5
    assert settings.rules == Rules(accept_legacy_user_fields=True)
    assert not Access(settings).uses_default_key


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"CAPI_CONSUMER_SANDBOX__NOPE": "1"}, "sandbox.nope"),
        ({"CAPI_CONSUMER_SANDBOX__RULES__NOPE": "1"}, "sandbox.rules.nope"),
        ({"CAPI_CONSUMER_SANDBOX__RULES__OPPCREF": "maybe"}, "sandbox.rules.oppcref"),
        ({"CAPI_CONSUMER_SANDBOX__ERROR_FORMAT": "xml"}, "sandbox.error_format"),
        ({"CAPI_CONSUMER_SANDBOX__FAULTS": '{"rate": 1.5}'}, "sandbox.faults.rate"),
        ({"CAPI_CONSUMER_SANDBOX__PIXELS": '[{"pixel_id": "a"}, {"pixel_id": "a"}]'}, "sandbox"),
    ],
)
def test_bad_sandbox_settings_name_the_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_sandbox_settings(None, environ=environ)
    assert error.value.key == key


def test_keys_are_masked_in_the_effective_config() -> None:
    environ = {
        "CAPI_CONSUMER_SANDBOX__API_KEYS": '["shared-secret"]',
        "CAPI_CONSUMER_SANDBOX__ADVERTISER_API_KEYS": '["ads-secret"]',
        "CAPI_CONSUMER_SANDBOX__PIXELS": '[{"pixel_id": "px", "api_keys": ["pixel-secret"]}]',
    }
    shown = str(masked(load_sandbox_settings(None, environ=environ)))
    for secret in ("shared-secret", "ads-secret", "pixel-secret"):
        assert secret not in shown
    assert "px" in shown


def test_command_line_keys_may_send_to_command_line_pixels() -> None:
    configured = SandboxSettings.model_validate(
        {"pixels": [{"pixel_id": "own", "api_keys": ["own-key"]}]}
    )
    access = Access(with_command_line(configured, api_keys=["cli-key"], pixel_ids=["a", "own"]))
    assert access.check_pixel("cli-key", "a", 404) is None
    assert access.check_pixel("cli-key", "own", 404) is None
    assert access.check_pixel("own-key", "own", 404) is None
    denied = access.check_pixel("own-key", "a", 404)
    assert denied is not None
    assert denied.status == 403


def test_the_section_is_read_from_the_file_with_the_environment_over_it(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kafka:\n  nope: 1\nsandbox:\n  recent_events_per_pixel: 7\n")
    settings = load_sandbox_settings(path, {"CAPI_CONSUMER_SANDBOX__ERROR_FORMAT": "detail"})
    assert settings.recent_events_per_pixel == 7
    assert settings.error_format == "detail"
