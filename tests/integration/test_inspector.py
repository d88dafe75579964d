"""The events inspector of a running service, seen in a real headless browser.

A real `run` (embedded broker, sandbox) delivers events while the page is open; a poison event
among them is rejected by the API. The page must show the rejection and its failing path, and
neither the page nor its JSON may hold a planted clear identity or the API key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consumer.cli.produce import produce_events
from consumer.devtools.embedded_broker import EmbeddedBroker
from consumer.devtools.samples import generate_events
from consumer.sandbox.server import SandboxThread
from tests.integration.browser import headless_chromium
from tests.integration.conftest import (
    API_KEY,
    as_config,
    consumer_config,
    sandbox_settings,
    start_cli,
    wait_for,
    write_config,
)
from tests.integration.test_observability import free_port, get, secrets_of

pytestmark = pytest.mark.integration

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "inspector.png"
PLANTED_EMAIL = "planted.person@example.org"
PLANTED_PHONE = "+1 415 555 0199"
PLANTED_IP = "198.51.100.77"
POISON_ID = "poison-order-0001"


def planted(base: dict[str, Any], event_id: str) -> dict[str, Any]:
    """A purchase carrying the identities that must never be shown in clear."""
    event = copy.deepcopy(base)
    event["context"]["event_id"] = event_id
    event["context"]["device"]["ip"] = PLANTED_IP
    event["user"] = {**event.get("user", {}), "email": PLANTED_EMAIL, "phone": PLANTED_PHONE}
    return event


def inspector_json(base: str) -> dict[str, Any]:
    status, body = get(f"{base}/inspector/events.json")
    return json.loads(body) if status == 200 else {"events": [], "counts": {}}


def test_inspector_page_shows_the_rejection_and_no_clear_identity(
    broker: EmbeddedBroker, names: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group, dlq = names("events"), names("group"), names("dlq")
    port = free_port()
    now_ms = int(time.time() * 1000)
    purchase = next(
        e for e in generate_events(50, seed=3, now_ms=now_ms) if e["event_name"] == "purchase"
    )
    settings = sandbox_settings(faults={"poison_ids": [POISON_ID]})
    with SandboxThread(settings) as sandbox:
        raw = consumer_config(
            broker,
            sandbox.url,
            [topic],
            group,
            dlq,
            observability={"enabled": True, "host": "127.0.0.1", "port": port},
            inspector={"enabled": True, "max_events": 200},
        )
        config = as_config(raw)
        first = [*generate_events(30, seed=5, now_ms=now_ms), planted(purchase, "planted-1")]
        produce_events(config, topic, first)
        run = start_cli("run", "--config", str(write_config(tmp_path / "c.yaml", raw)))
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: inspector_json(base)["counts"].get("delivered", 0) >= len(first),
                60,
                "the first events delivered",
            )
            with headless_chromium() as browser:
                from selenium.webdriver.common.by import By
                from selenium.webdriver.support.ui import Select, WebDriverWait

                browser.get(f"{base}/inspector")
                WebDriverWait(browser, 20).until(
                    lambda b: b.find_elements(By.CSS_SELECTOR, "#rows tr")
                )
                # While the page is open, a second wave holds the poison event.
                second = [
                    *generate_events(20, seed=6, now_ms=now_ms, invalid_ratio=0.4),
                    planted(purchase, POISON_ID),
                ]
                produce_events(config, topic, second)
                rejected = WebDriverWait(browser, 60).until(
                    lambda b: b.find_elements(
                        By.CSS_SELECTOR, '#rows tr[data-outcome="rejected_by_api"]'
                    )
                )
                assert POISON_ID in rejected[0].text
                assert rejected[0].find_element(By.CSS_SELECTOR, "td.field").text == "id"
                rejected[0].click()
                failing = WebDriverWait(browser, 10).until(
                    lambda b: b.find_elements(By.CSS_SELECTOR, "#payload .failing")
                )
                assert failing[0].get_attribute("data-path") == "id"
                assert failing[0].is_displayed()
                assert POISON_ID in failing[0].text
                error = browser.find_element(By.ID, "error")
                assert error.find_element(By.CSS_SELECTOR, ".failing-path").text == "id"
                assert "poison id" in error.text

                Select(browser.find_element(By.ID, "outcome")).select_by_value("rejected_by_api")
                shown = browser.find_elements(By.CSS_SELECTOR, "#rows tr")
                assert shown
                assert {row.get_attribute("data-outcome") for row in shown} == {"rejected_by_api"}
                Select(browser.find_element(By.ID, "outcome")).select_by_value("")
                if os.environ.get("UPDATE_SCREENSHOTS") == "1":
                    SCREENSHOT.write_bytes(browser.get_screenshot_as_png())
                page = browser.page_source

                # The sandbox's own view of the same run: the poison request and its path.
                browser.get(f"{sandbox.url}/_sandbox/")
                refused = WebDriverWait(browser, 20).until(
                    lambda b: b.find_elements(By.CSS_SELECTOR, '#rows tr[data-outcome="rejected"]')
                )
                assert POISON_ID in refused[0].text
                assert refused[0].find_element(By.CSS_SELECTOR, "td.field").text == "id"
                page += browser.page_source

            data = inspector_json(base)
            sandbox_data = get(f"{sandbox.url}/_sandbox/events.json")[1]
            text = page + json.dumps(data, ensure_ascii=False) + sandbox_data
            secrets = secrets_of(first + second) | {PLANTED_EMAIL, PLANTED_PHONE, PLANTED_IP}
            secrets |= {API_KEY, hashlib.sha256(b"planted.person@example.org").hexdigest()}
            leaked = sorted(secret for secret in secrets if secret in text)
            assert not leaked, f"clear identities in the inspector: {leaked}"
            outcomes = {event["outcome"] for event in data["events"]}
            assert {"delivered", "rejected_by_api", "dead_lettered", "skipped"} <= outcomes
            assert sum(data["counts"].values()) == len(first) + len(second)
            poison = next(e for e in data["events"] if e["id"] == POISON_ID)
            assert poison["status"] == 400
            assert poison["payload"]["user"]["ip_address"] == "***"
            assert poison["payload"]["user"]["emails_sha256"][0].endswith("…")
            assert set(poison) >= {
                "at_ms", "pixel", "id", "type", "outcome", "reason", "field", "status", "payload"
            }  # fmt: skip
        finally:
            run.send_signal(signal.SIGTERM)
            run.communicate(timeout=60)
    assert run.returncode == 0
    assert SCREENSHOT.is_file()


def test_without_chromium_the_browser_test_skips_unless_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.delenv("REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium"), headless_chromium():
        pass
    monkeypatch.setenv("REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_BROWSER=1"), headless_chromium():
        pass
