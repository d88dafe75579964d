"""Every mapped event satisfies the API's rules (openai-capi.md §11.2–11.4), as encoded in
`transforms.capi_rules` (owned separately; skipped only while that module does not exist)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given

from tests.transforms.property_support import (
    CONFIGURED,
    DEFAULT,
    NOW,
    PROFILE,
    assert_well_formed,
    ca_events,
    rich_events,
)
from transforms import Mapped, map_event

capi_rules = pytest.importorskip("transforms.capi_rules")

# The API's rules at their strictest where the mapping promises more than the API needs: every
# user value we send is one the API would use (not merely tolerate), countries in upper case.
EXACT_RULES = capi_rules.Rules(drop_invalid_user_values=False, countries_case_insensitive=False)


@PROFILE
@given(event=ca_events)
def test_mapped_events_satisfy_the_api_rules(event: dict[str, Any]) -> None:
    for compiled in (DEFAULT, CONFIGURED):
        outcome = map_event(event, compiled, NOW)
        assert_well_formed(outcome)
        if isinstance(outcome, Mapped):
            assert capi_rules.validate_event(outcome.event, NOW, EXACT_RULES) is None, outcome.event
            orjson.dumps(outcome.event)  # always serializable


@PROFILE
@given(event=rich_events)
def test_rich_mapped_events_satisfy_the_api_rules(event: dict[str, Any]) -> None:
    for compiled in (DEFAULT, CONFIGURED):
        outcome = map_event(event, compiled, NOW)
        assert_well_formed(outcome)
        if isinstance(outcome, Mapped):
            assert capi_rules.validate_event(outcome.event, NOW, EXACT_RULES) is None, outcome.event


def test_the_rules_module_checks_what_we_think() -> None:
    """Guard against a vacuous property: the rules do reject a broken event."""
    outcome = map_event(
        {"event_name": "purchase", "context": {"event_id": "e", "event_timestamp": NOW}},
        DEFAULT,
        NOW,
    )
    assert isinstance(outcome, Mapped)
    assert capi_rules.validate_event(outcome.event, NOW) is None
    broken = {**outcome.event, "data": {"type": "customer_action"}}
    assert capi_rules.validate_event(broken, NOW) is not None
    tolerated = {**outcome.event, "user": {"emails_sha256": ["not a digest"]}}
    assert capi_rules.validate_event(tolerated, NOW) is None  # the API drops it silently
    assert capi_rules.validate_event(tolerated, NOW, EXACT_RULES) is not None
