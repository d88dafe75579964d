"""The service's vocabularies built on the mapping's keep their values and order (contracts)."""

from __future__ import annotations

import re
from typing import get_args

import schemas
from consumer.codes import DLQ_REASONS, SkipReason, mapping_dlq_reason


def test_the_dlq_reasons_are_those_the_dead_letter_schema_documents() -> None:
    # In order: that of `dlq replay --reason`'s error message.
    fields = schemas.load_schema(schemas.DEAD_LETTER)["fields"]
    doc = next(field["doc"] for field in fields if field["name"] == "reason")
    assert tuple(re.split(r", | or ", doc.rstrip("."))) == DLQ_REASONS


def test_the_skip_reasons_are_the_mappings_and_the_services() -> None:
    assert get_args(SkipReason) == (
        "unmapped_event",
        "no_consent",
        "unrouted",
        "timestamp_out_of_window",
    )


def test_a_mapping_error_is_its_own_dlq_reason_but_for_input_that_is_no_object() -> None:
    for code in ("missing_field", "invalid_value", "timestamp_out_of_window"):
        assert mapping_dlq_reason(code) == code
    assert mapping_dlq_reason("invalid_json") == "undecodable"
