"""The mapping part of the configuration: event mapping, field mapping, defaults, consent.

Top-level keys of the one config file. Validated once at load time; `compile()` turns it into the
frozen, pre-split form the per-event code uses (owned by the transforms layer).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from transforms.compiled import (
    CompiledMapping,
    action_source_error,
    compile_mapping,
    event_mapping_error,
    field_mapping_error,
)
from transforms.event_mapping import translate_action_source


def _entry_error(model: str, key: str, message: str, value: object) -> ValidationError:
    """A validation error located at one key of a mapping, so it reads `section.key: message`."""
    # The message is a template for pydantic: braces from quoted values must not be expanded.
    template = message.replace("{", "{{").replace("}", "}}")
    return ValidationError.from_exception_data(
        model,
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", template),
                loc=(key,),
                input=value,
            )
        ],
    )


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action_source: str | None = None

    @field_validator("action_source")
    @classmethod
    def _translate(cls, value: str | None) -> str | None:
        """CA synonyms (`online`, `store`, ...) are translated once, here."""
        if value is None:
            return None
        error = action_source_error(value)
        if error is not None:
            raise ValueError(error)
        return translate_action_source(value)


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    required_categories: list[str] = Field(default_factory=list)

    @field_validator("required_categories", mode="before")
    @classmethod
    def _categories_as_strings(cls, value: Any) -> Any:
        """Categories compare as strings: a YAML `1` is the category "1"."""
        if isinstance(value, list):
            return [
                str(item) if isinstance(item, int) and not isinstance(item, bool) else item
                for item in value
            ]
        return value


class MappingSettings(BaseModel):
    """`event_mapping`, `field_mapping`, `defaults`, `consent`, `keep_url_query`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_mapping: dict[str, str | None] = Field(default_factory=dict)
    field_mapping: dict[str, str] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    consent: Consent = Field(default_factory=Consent)
    keep_url_query: bool = False

    @field_validator("event_mapping")
    @classmethod
    def _known_event_types(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        for name, event_type in value.items():
            error = event_mapping_error(event_type)
            if error is not None:
                raise _entry_error(cls.__name__, name, error, event_type)
        return value

    @field_validator("field_mapping")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for field, source in value.items():
            error = field_mapping_error(field, source)
            if error is not None:
                raise _entry_error(cls.__name__, field, error, source)
        return value

    def compile(self) -> CompiledMapping:
        """The per-event form of these settings; build it once and share it."""
        return compile_mapping(
            event_mapping=self.event_mapping,
            field_mapping=self.field_mapping,
            default_action_source=self.defaults.action_source,
            required_categories=self.consent.required_categories,
            keep_url_query=self.keep_url_query,
        )
