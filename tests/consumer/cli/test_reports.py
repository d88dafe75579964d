"""The human reports: a dry run's text says what would have been dead-lettered."""

from __future__ import annotations

import io

from consumer.cli.progress import print_report, summary_lines


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_dry_run_text_report_says_would_be_dead_lettered() -> None:
    report = {"dry_run": True, "dead_lettered": {"invalid_value": 3}, "delivered": 0}
    shown = Terminal()
    print_report(report, shown)
    assert "would be dead-lettered" in shown.getvalue()
    assert "dead lettered" not in shown.getvalue()
    real = Terminal()
    print_report({**report, "dry_run": False}, real)
    assert "would be" not in real.getvalue()
    piped = io.StringIO()
    print_report(report, piped)
    assert '"dead_lettered":{"invalid_value":3}' in piped.getvalue()  # JSON keys unchanged


def test_the_summary_accounts_for_every_event() -> None:
    summary = {
        "read": 5,
        "delivered": 3,
        "filtered": 0,
        "skipped": {"consent_missing": 1},
        "dead_lettered": {"invalid_value": 1},
        "requests": 1,
        "batches": 1,
        "events_per_s": 10.0,
    }
    lines = summary_lines(summary, "title")
    assert lines[1] == "title"
    assert lines[-1] == "every event accounted for: 5 of 5 settled, offsets committed"
    assert any(line.startswith("dead-lettered: invalid_value") for line in lines)
