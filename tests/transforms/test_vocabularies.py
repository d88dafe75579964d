"""The outcomes' `Literal` vocabularies are exactly the documented ones: the "Errors and skips"
table of docs/mapping.md, and the codes and reasons the golden cases expect and `map_event`
produces on them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from tests.transforms.goldens import load_cases, parsed_input
from transforms import Failed, MappingSettings, Skipped, map_event
from transforms.outcomes import EventErrorCode, MappingErrorCode, MappingSkipReason

DOC = Path(__file__).parents[2] / "docs" / "mapping.md"
ERROR_CODES = set(get_args(MappingErrorCode))
SKIP_REASONS = set(get_args(MappingSkipReason))


def _documented() -> tuple[set[str], set[str]]:
    """(error codes, skip reasons) of the table under "## Errors and skips"."""
    section = DOC.read_text(encoding="utf-8").split("## Errors and skips", 1)[1]
    table = section.split("\n\n", 2)[1]
    codes, reasons = set(), set()
    for row in table.splitlines()[2:]:
        match = re.match(r"\| (skipped )?`(\w+)` \|", row)
        assert match, row
        (reasons if match[1] else codes).add(match[2])
    return codes, reasons


def test_the_vocabularies_are_those_documented() -> None:
    assert _documented() == (ERROR_CODES, SKIP_REASONS)
    # An event's errors: all but the one for an input that is not an object.
    assert ERROR_CODES - set(get_args(EventErrorCode)) == {"invalid_json"}


def test_the_golden_cases_expect_every_code_and_reason_and_no_other() -> None:
    expects = [case.expect for case in load_cases() if case.expect is not None]
    codes = {expect["error"]["code"] for expect in expects if "error" in expect}
    reasons = {expect["skipped"]["reason"] for expect in expects if "skipped" in expect}
    assert (codes, reasons) == (ERROR_CODES, SKIP_REASONS)


def test_map_event_produces_every_code_and_reason_on_the_golden_cases() -> None:
    codes, reasons = set(), set()
    for case in load_cases():
        event = parsed_input(case)
        if event is None:  # not JSON: the `map` command's own invalid_json, not map_event's
            continue
        compiled = MappingSettings.model_validate(case.config).compile()
        outcome = map_event(event, compiled, case.now)
        if isinstance(outcome, Failed):
            codes.add(outcome.code)
        elif isinstance(outcome, Skipped):
            reasons.add(outcome.reason)
    assert (codes, reasons) == (ERROR_CODES, SKIP_REASONS)
