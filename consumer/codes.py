"""The closed vocabularies of the service, as `Literal` types.

Their values are contracts: metric labels, DLQ headers and records, the run summary, the
`--reason` option of `dlq replay`, exit codes. Add a value here before using it anywhere.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# The mapping's own vocabularies are defined by the pure transform layer, which cannot import
# this package; re-exported here beside the service's.
from transforms.outcomes import EventErrorCode, MappingErrorCode, MappingSkipReason

__all__ = [
    "DLQ_REASONS",
    "OUTCOMES",
    "DlqReason",
    "EventErrorCode",
    "ExitReason",
    "MappingErrorCode",
    "MappingSkipReason",
    "Outcome",
    "RequestOutcome",
    "SkipReason",
    "mapping_dlq_reason",
]

# Why an event was deliberately not sent (`capi_consumer_events_skipped_total{reason}`): the
# mapping's reasons, no pixel for it, or too old for the API in a run that skips those
# (`backfill` without `--dlq-expired`, `dlq replay`).
SkipReason = Literal[MappingSkipReason, "unrouted", "timestamp_out_of_window"]

# Why an event went to the dead-letter topic (the `capi.dlq.reason` header): not decodable, one
# of the mapping's errors, refused by the API, or too large for a request.
DlqReason = Literal["undecodable", EventErrorCode, "rejected_by_api", "too_large"]
DLQ_REASONS: Final[tuple[DlqReason, ...]] = get_args(DlqReason)

# How a settled event ended, as the events inspector shows it.
Outcome = Literal["delivered", "rejected_by_api", "dead_lettered", "skipped"]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)

# What became of one request to the API (`capi_consumer_batches_total{outcome}`).
RequestOutcome = Literal["accepted", "retried", "split", "rejected", "fatal"]

# How a run of the live loop ended (`capi-consumer run` turns it into an exit code).
ExitReason = Literal["stopped", "caught_up", "fatal", "breaker", "error"]


def mapping_dlq_reason(code: MappingErrorCode) -> DlqReason:
    """The DLQ reason of a mapping error. `invalid_json` (an input that is not an object) cannot
    come from a decoded record; were it to, the record is one that could not be decoded."""
    return "undecodable" if code == "invalid_json" else code
