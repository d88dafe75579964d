"""The three outcomes of mapping one event: values, never exceptions."""

from __future__ import annotations

from typing import Any, Final, Literal

# The vocabularies of the outcomes, as docs/mapping.md lists them ("Errors and skips"). They are
# contracts (the `map` output, DLQ reasons, metric labels); consumer.codes builds on them.

# Why an event is deliberately not sent (`Skipped.reason`).
MappingSkipReason = Literal["unmapped_event", "no_consent"]

# Why an event (a JSON object) cannot become a CAPI event.
EventErrorCode = Literal["missing_field", "invalid_value", "timestamp_out_of_window"]

# Why an input cannot become a CAPI event (`Failed.code`): the event's errors, or an input that
# is not a JSON object at all.
MappingErrorCode = Literal["invalid_json", EventErrorCode]


# The `user` fields a mapped event can have, in output order, and `Mapped.shape`'s bits: bit i
# when its `user` has USER_FIELDS[i], OPPREF_BIT when it has `oppref`.
USER_FIELDS: Final = (
    "emails_sha256",
    "phone_numbers_sha256",
    "external_ids_sha256",
    "first_names_sha256",
    "last_names_sha256",
    "countries",
    "cities",
    "regions",
    "postal_codes",
    "ip_address",
    "user_agent",
    "obref",
)
OPPREF_BIT: Final = 1 << len(USER_FIELDS)


def shape_of(event: dict[str, Any]) -> int:
    """`Mapped.shape` read back from a mapped event (the mapping fills it in as it goes)."""
    user = event.get("user") or {}
    shape = OPPREF_BIT if "oppref" in event else 0
    for bit, key in enumerate(USER_FIELDS):
        if key in user:
            shape |= 1 << bit
    return shape


# Plain classes rather than dataclasses: mypyc compiles their `__init__` natively (a dataclass's is
# generated at run time, so it stays interpreted). Equality, hash and repr are a frozen
# dataclass's; the attributes are `Final` for the type checker.


class Mapped:
    """The event maps to a valid CAPI event (no request wrapper).

    `shape` says which identities it carries without reading them back: bit i when its `user`
    has `USER_FIELDS[i]`, `OPPREF_BIT` when it has `oppref` (`shape_of(event)` when not given).
    Derived from `event`: equality and the repr leave it out.
    """

    __slots__ = ("event", "shape")
    __match_args__ = ("event",)

    def __init__(self, event: dict[str, Any], shape: int | None = None) -> None:
        self.event: Final = event
        self.shape: Final = shape_of(event) if shape is None else shape

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Mapped)
        return self.event == other.event

    def __hash__(self) -> int:
        return hash((self.event,))

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(event={self.event!r})"


class Skipped:
    """The event is deliberately not sent."""

    __slots__ = ("event_name", "reason")
    __match_args__ = ("reason", "event_name")

    def __init__(self, reason: MappingSkipReason, event_name: str | None) -> None:
        self.reason: Final = reason
        self.event_name: Final = event_name

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Skipped)
        return (self.reason, self.event_name) == (other.reason, other.event_name)

    def __hash__(self) -> int:
        return hash((self.reason, self.event_name))

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(reason={self.reason!r}, event_name={self.event_name!r})"


class Failed:
    """The event cannot become a valid CAPI event.

    `field` is the CAPI output path; `message` never holds a raw identifier.
    """

    __slots__ = ("code", "field", "message")
    __match_args__ = ("code", "field", "message")

    def __init__(self, code: MappingErrorCode, field: str, message: str) -> None:
        self.code: Final = code
        self.field: Final = field
        self.message: Final = message

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Failed)
        return (self.code, self.field, self.message) == (other.code, other.field, other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.field, self.message))

    def __repr__(self) -> str:
        return (
            f"{type(self).__qualname__}(code={self.code!r}, field={self.field!r}, "
            f"message={self.message!r})"
        )


Outcome = Mapped | Skipped | Failed
