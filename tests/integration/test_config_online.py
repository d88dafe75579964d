"""`config check --online` against the real sandbox: one validate_only sample per pixel,
nothing stored; exit 3 for refused credentials or pixels, 2 for a refused sample, 1 when the
API cannot be reached; messages never show the key."""

from __future__ import annotations

import http.server
import threading
from http.server import ThreadingHTTPServer
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


def test_a_redirect_is_refused_and_the_key_never_follows_it(tmp_path: Path) -> None:
    """A 302 to another host is not followed (urllib would re-send the bearer key there as a
    GET, and read its 200 as "accepted"): exit 1, and the other host hears nothing."""
    heard: list[str] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            heard.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere) as elsewhere:
        target = f"http://127.0.0.1:{elsewhere.server_address[1]}/"

        class Redirecting(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        with ThreadingHTTPServer(("127.0.0.1", 0), Redirecting) as redirecting:
            threads = [
                threading.Thread(target=server.serve_forever, daemon=True)
                for server in (elsewhere, redirecting)
            ]
            for thread in threads:
                thread.start()
            try:
                base_url = f"http://127.0.0.1:{redirecting.server_address[1]}"
                capi = {"base_url": base_url, "pixel_id": PIXEL, "api_key": API_KEY}
                code, lines = check_online(tmp_path, capi)
            finally:
                redirecting.shutdown()
                elsewhere.shutdown()
    assert code == 1
    assert lines == [
        f"online: pixel {PIXEL}: rejected (HTTP 302): "
        "a redirect, not followed (check capi.base_url)"
    ]
    assert heard == []
