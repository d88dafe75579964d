"""The service's vocabularies built on the mapping's keep their values and order (contracts)."""

from __future__ import annotations

from typing import get_args

from consumer.codes import DLQ_REASONS, SkipReason, mapping_dlq_reason


def test_the_dlq_reasons_and_skip_reasons_are_unchanged() -> None:
    # The order is that of `dlq replay --reason`'s error message.
    assert DLQ_REASONS == (
        "undecodable",
        "missing_field",
        "invalid_value",
        "timestamp_out_of_window",
        "rejected_by_api",
        "too_large",
    )
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
