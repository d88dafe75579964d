"""Health, metrics and logs of the running service; no PII, key, oppref or obref in any log."""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from consumer.cli.produce import produce_events
from consumer.devtools.embedded_broker import EmbeddedBroker
from consumer.devtools.samples import generate_events
from consumer.sandbox.server import SandboxThread
from tests.integration.conftest import (
    API_KEY,
    PIXEL,
    as_config,
    consumer_config,
    read_dlq,
    start_cli,
    stats,
    stored_events,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def secrets_of(events: list[dict]) -> set[str]:
    """Every raw identifier, opaque reference and key the logs must never show."""
    values = {API_KEY}
    for event in events:
        user = event.get("user") or {}
        device = (event.get("context") or {}).get("device") or {}
        openai = (event.get("partners") or {}).get("openai") or {}
        for value in (
            user.get("email"),
            user.get("phone"),
            user.get("firstname"),
            user.get("lastname"),
            user.get("id"),
            device.get("ip"),
            device.get("cookie"),
            openai.get("oppref"),
            openai.get("obref"),
        ):
            if isinstance(value, str) and len(value.strip()) >= 4:
                values.add(value.strip())
        cookie = device.get("cookie") or ""
        for part in cookie.split(";"):
            if "=" in part and part.strip().startswith(("__oppref", "__obref")):
                values.add(part.split("=", 1)[1].strip())
    return values


def test_health_metrics_and_pii_free_debug_logs(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group, dlq = names("events"), names("group"), names("dlq")
    port = free_port()
    raw = consumer_config(
        broker,
        sandbox.url,
        [topic],
        group,
        dlq,
        observability={
            "enabled": True,
            "host": "127.0.0.1",
            "port": port,
            "log_level": "debug",
            "log_format": "json",
        },
    )
    events = generate_events(600, seed=11, now_ms=int(time.time() * 1000), invalid_ratio=0.1)
    report = produce_events(as_config(raw), topic, events)
    assert report.produced == len(events)
    base = f"http://127.0.0.1:{port}"

    process = start_cli("run", "--config", str(write_config(tmp_path / "c.yaml", raw)))
    try:
        wait_for(lambda: get(base + "/livez")[0] == 200, 30, "/livez")
        wait_for(lambda: get(base + "/readyz")[0] == 200, 30, "/readyz")
        wait_for(lambda: stats(sandbox)["accepted"] > 0, 60, "deliveries")

        def settled() -> bool:
            _, text = get(base + "/metrics")
            return f'capi_consumer_committed_offset{{partition="0",topic="{topic}"}}' in text

        wait_for(settled, 60, "a committed offset in /metrics")
        ids = {str((event.get("context") or {}).get("event_id")).strip() for event in events}

        def identity_coverage_counted() -> bool:
            # Every delivered event carrying a hashed email is counted once, no more.
            mine = [e for e in stored_events(sandbox) if e["id"] in ids]
            with_email = sum(1 for e in mine if e.get("user", {}).get("emails_sha256"))
            _, text = get(base + "/metrics")
            label = f'{{field="emails_sha256",pixel="{PIXEL}"}}'
            return (
                with_email > 0
                and f"capi_consumer_delivered_identity_total{label} {with_email}.0" in text
            )

        wait_for(identity_coverage_counted, 60, "identity coverage of the delivered events")
        _, metrics = get(base + "/metrics")
        for name in (
            "capi_consumer_events_consumed_total",
            "capi_consumer_events_delivered_total",
            "capi_consumer_request_duration_seconds_bucket",
            "capi_consumer_delivered_identity_total",
            "capi_consumer_lag_events",
            "capi_consumer_oldest_undelivered_event_age_seconds",
        ):
            assert name in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    logs = out + err
    assert "dead-lettering event" in logs  # the logs did see the invalid events
    secrets = secrets_of(events)
    assert len(secrets) > 100  # the check below has something to find
    assert [value for value in secrets if value in logs] == []
    letters = read_dlq(broker, dlq)
    assert letters  # the invalid events were dead-lettered ...
    texts = " ".join(f"{letter['message']} {letter['field']}" for letter in letters)
    assert [value for value in secrets if value in texts] == []  # ... with clean messages
