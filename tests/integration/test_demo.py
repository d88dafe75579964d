"""`make demo` runs `capi-consumer demo`: end to end on its own broker and sandbox."""

from __future__ import annotations

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end_and_accounts_for_every_event() -> None:
    result = run_cli("demo", "--events", "600", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "every event accounted for: 600 of 600 settled" in result.stdout
    delivered = next(
        line for line in result.stdout.splitlines() if line.startswith("delivered")
    ).split()[-1]
    assert int(delivered) > 500
    assert "dead-lettered: " in result.stdout  # the sample holds invalid events on purpose
