"""`capi-consumer sandbox` as a real subprocess, and `SandboxThread` for synchronous callers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import orjson
import pytest
import yaml

from consumer.sandbox.server import SandboxThread
from consumer.sandbox.settings import SandboxSettings
from tests.consumer.sandbox.sandbox_helpers import fresh_events, post_events

URL_LINE = re.compile(r"sandbox listening on (http://127\.0\.0\.1:(\d+))\n")
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10


class CliSandbox:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    async def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Send `signum`; the exit status and everything printed."""
        self.process.send_signal(signum)
        stdout, stderr = await asyncio.wait_for(self.process.communicate(), STOP_TIMEOUT_S)
        assert self.process.returncode is not None
        return self.process.returncode, stdout.decode(), stderr.decode()


async def start_cli(*args: str) -> CliSandbox:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPI_CONSUMER_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "consumer.cli", "sandbox", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)).decode()
    match = URL_LINE.fullmatch(line)
    if match is None:
        process.kill()
        _, stderr = await process.communicate()
        raise AssertionError(f"unexpected first line {line!r}; stderr: {stderr.decode()}")
    assert int(match.group(2)) > 0
    return CliSandbox(process, match.group(1))


async def test_the_cli_serves_the_given_keys_and_pixels_then_stops_on_sigterm() -> None:
    sandbox = await start_cli(
        "--api-key", "alpha-secret-1", "--api-key", "beta-secret-2",
        "--pixel-id", "pixel-a", "--pixel-id", "pixel-b",
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            for key in ("alpha-secret-1", "beta-secret-2"):
                for pid in ("pixel-a", "pixel-b"):
                    answer = await post_events(
                        session, sandbox.url, fresh_events(2), pid=pid, key=key
                    )
                    assert answer.status == 200
            answer = await post_events(session, sandbox.url, fresh_events(1), pid="pixel-a")
            assert answer.status == 401  # test-key is off once a key is given
            answer = await post_events(
                session, sandbox.url, fresh_events(1), pid="pixel-c", key="alpha-secret-1"
            )
            assert answer.status == 404
    finally:
        status, stdout, stderr = await sandbox.stop()
    assert status == 0
    assert stdout == ""  # the URL line was already read; nothing else on stdout
    assert "test-key" not in stderr
    assert "secret" not in stderr
    assert "undocumented API behaviours" in stderr


async def test_without_a_key_the_cli_says_test_key_works_and_stops_on_sigint() -> None:
    sandbox = await start_cli()
    try:
        async with aiohttp.ClientSession() as session:
            answer = await post_events(session, sandbox.url, fresh_events(1), pid="whatever")
            assert answer.status == 200
    finally:
        status, _, stderr = await sandbox.stop(signal.SIGINT)
    assert status == 0
    assert "no API key configured: the key 'test-key' may send to any pixel" in stderr


async def test_the_cli_reads_the_sandbox_section_of_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    sandbox_section = {
        "pixels": [{"pixel_id": "pixel-cfg", "api_keys": ["cfg-secret-key"]}],
        "faults": {"script": [{"status": 503}]},
        "rules": {"reject_unknown_fields": False},
    }
    config.write_text(yaml.safe_dump({"sandbox": sandbox_section}))
    sandbox = await start_cli("--config", str(config))
    try:
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(2):
                answer = await post_events(
                    session, sandbox.url, fresh_events(1), pid="pixel-cfg", key="cfg-secret-key"
                )
                statuses.append(answer.status)
            assert statuses == [503, 200]
    finally:
        status, _, stderr = await sandbox.stop()
    assert status == 0
    assert "cfg-secret-key" not in stderr
    assert "strict defaults except reject_unknown_fields=False" in stderr


async def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"sandbox": {"error_format": "xml"}}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "consumer.cli", "sandbox", "--port", "0", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), START_TIMEOUT_S)
    assert process.returncode == 2
    assert stdout == b""
    assert "sandbox.error_format" in stderr.decode()


async def test_a_port_in_use_exits_1() -> None:
    first = await start_cli()
    try:
        port = first.url.rsplit(":", 1)[1]
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "consumer.cli", "sandbox", "--port", port,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(second.communicate(), START_TIMEOUT_S)
        assert second.returncode == 1
        assert stdout == b""
        assert f"cannot listen on 127.0.0.1:{port}" in stderr.decode()
    finally:
        assert (await first.stop())[0] == 0


def post_sync(url: str, body: object, key: str = "test-key") -> int:
    request = urllib.request.Request(
        f"{url}/v1/events?pid=pixel-1",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def test_sandbox_thread_for_synchronous_callers() -> None:
    sandbox = SandboxThread(SandboxSettings(recent_events_per_pixel=5))
    url = sandbox.start()
    try:
        assert url.startswith("http://127.0.0.1:")
        assert post_sync(url, {"events": fresh_events(3)}) == 200
        assert post_sync(url, {"events": fresh_events(1)}, key="wrong") == 401
        assert sandbox.call(lambda state: state.stored_ids("pixel-1")) == ["e0", "e1", "e2"]
        assert sandbox.call(lambda state: state.stats())["rejected"] == {"invalid_api_key": 1}
    finally:
        sandbox.stop()
    with pytest.raises(urllib.error.URLError, match="refused"):  # nothing listens any more
        post_sync(url, {"events": []})
    sandbox.stop()  # twice is harmless
    assert sandbox.call(lambda state: state.stored_ids("pixel-1")) == ["e0", "e1", "e2"]


def test_sandbox_thread_reports_a_port_in_use() -> None:
    with SandboxThread() as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="address already in use"):
            SandboxThread(port=port).start()
