"""The three outcomes of mapping one event: values, never exceptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Mapped:
    """The event maps to a valid CAPI event (no request wrapper)."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Skipped:
    """The event is deliberately not sent: `unmapped_event` or `no_consent`."""

    reason: str
    event_name: str | None


@dataclass(frozen=True, slots=True)
class Failed:
    """The event cannot become a valid CAPI event.

    `code` is one of `invalid_json`, `missing_field`, `invalid_value`, `timestamp_out_of_window`;
    `field` is the CAPI output path; `message` never holds a raw identifier.
    """

    code: str
    field: str
    message: str


Outcome = Mapped | Skipped | Failed
