"""The three outcomes of mapping one event: values, never exceptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# The vocabularies of the outcomes, as docs/mapping.md lists them ("Errors and skips"). They are
# contracts (the `map` output, DLQ reasons, metric labels); consumer.codes builds on them.

# Why an event is deliberately not sent (`Skipped.reason`).
MappingSkipReason = Literal["unmapped_event", "no_consent"]

# Why an event (a JSON object) cannot become a CAPI event.
EventErrorCode = Literal["missing_field", "invalid_value", "timestamp_out_of_window"]

# Why an input cannot become a CAPI event (`Failed.code`): the event's errors, or an input that
# is not a JSON object at all.
MappingErrorCode = Literal["invalid_json", EventErrorCode]


@dataclass(frozen=True, slots=True)
class Mapped:
    """The event maps to a valid CAPI event (no request wrapper)."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Skipped:
    """The event is deliberately not sent."""

    reason: MappingSkipReason
    event_name: str | None


@dataclass(frozen=True, slots=True)
class Failed:
    """The event cannot become a valid CAPI event.

    `field` is the CAPI output path; `message` never holds a raw identifier.
    """

    code: MappingErrorCode
    field: str
    message: str


Outcome = Mapped | Skipped | Failed
