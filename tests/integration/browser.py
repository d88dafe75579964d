"""A real headless browser for page tests: the distribution's Chromium driven by selenium.

No browser is ever downloaded: without `chromium` and `chromedriver` on PATH the test is skipped
with the reason, unless `REQUIRE_BROWSER=1` (CI), where it fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

# The flags this project's machines need (no GPU, no network beyond 127.0.0.1, no sandbox).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)


def _executables() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A selenium WebDriver on a fresh profile; skips (or fails under REQUIRE_BROWSER=1)."""
    found = _executables()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        found = None
    if found is None:
        reason = "browser test skipped: chromium, chromedriver or selenium is missing"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(reason.replace("skipped", "required (REQUIRE_BROWSER=1)"))
        pytest.skip(reason + " (apt-get install chromium chromium-driver)")
    browser, driver_path = found
    with tempfile.TemporaryDirectory(prefix="capi-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            yield driver
        finally:
            driver.quit()
