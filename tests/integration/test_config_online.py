"""`config check --online` against the real sandbox: one validate_only sample per pixel,
nothing stored; exit 3 for refused credentials or pixels, 2 for a refused sample, 1 when the
API cannot be reached; messages never show the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumer.sandbox.server import SandboxThread
from tests.integration.conftest import (
    API_KEY,
    PIXEL,
    run_cli,
    sandbox_settings,
    stats,
    write_config,
)
from tests.integration.test_observability import free_port

pytestmark = pytest.mark.integration

REFUSING_PIXEL = "pixel-refuses-the-sample"


def check_online(tmp_path: Path, capi: dict[str, Any]) -> tuple[int, list[str]]:
    config = write_config(tmp_path / "c.yaml", {"capi": capi})
    result = run_cli("config", "check", "--mapping-only", "--online", "--config", str(config))
    assert "api_key: '***'" in result.stdout  # the usual masked YAML first
    return result.returncode, result.stderr.splitlines()


def test_config_check_online(tmp_path: Path) -> None:
    settings = sandbox_settings(
        pixels=[
            {"pixel_id": PIXEL, "api_keys": [API_KEY]},
            {
                "pixel_id": REFUSING_PIXEL,
                "api_keys": [API_KEY],
                "faults": {"script": [{"status": 422}]},
            },
        ]
    )
    with SandboxThread(settings) as sandbox:
        capi = {"base_url": sandbox.url, "pixel_id": PIXEL, "api_key": API_KEY}
        code, lines = check_online(tmp_path, capi)
        assert (code, lines) == (0, [f"online: pixel {PIXEL}: accepted"])
        counted = stats(sandbox)
        assert counted["validated"] == 1
        assert counted["stored"] == 0  # validate_only: nothing is stored

        refused = {**capi, "routes": [{"field": "type", "values": ["x"], "pixel_id": "nope"}]}
        code, lines = check_online(tmp_path, refused)
        assert code == 3
        assert lines[0] == f"online: pixel {PIXEL}: accepted"
        assert lines[1].startswith("online: pixel nope: rejected (HTTP 404): ")

        code, lines = check_online(tmp_path, {**capi, "api_key": "wrong-key-123"})
        assert code == 3
        assert lines == [
            f"online: pixel {PIXEL}: rejected (HTTP 401): "
            "Missing or invalid API key in Authorization header."
        ]

        sample_refused = {
            **capi,
            "routes": [{"field": "type", "values": ["x"], "pixel_id": REFUSING_PIXEL}],
        }
        code, lines = check_online(tmp_path, sample_refused)
        assert code == 2
        assert lines[1].startswith(f"online: pixel {REFUSING_PIXEL}: rejected (HTTP 422): ")
        assert stats(sandbox)["stored"] == 0
        assert not any(API_KEY in line for line in lines)

    unreachable = {"base_url": f"http://127.0.0.1:{free_port()}", "pixel_id": PIXEL}
    code, lines = check_online(tmp_path, {**unreachable, "api_key": API_KEY})
    assert code == 1
    assert lines[0].startswith(f"online: pixel {PIXEL}: unreachable")
