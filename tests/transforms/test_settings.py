"""The mapping keys of the config file: validation messages through `load_config`, compile()."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consumer.config import AppConfig, ConfigError, load_config
from transforms import CompiledMapping, Mapped, MappingSettings, map_event

NOW = 1_773_892_900_000
EVENT = {
    "event_name": "purchase",
    "context": {"event_id": "e1", "event_timestamp": NOW},
    "currency": "EUR",
}


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> AppConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ=environ or {})


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # The two examples of mapping.md (clarifications of 2026-11-30), word for word.
        (
            "event_mapping: {purchase: order_completed}",
            "configuration error: event_mapping.purchase: "
            "'order_completed' is not a CAPI event type",
        ),
        (
            "field_mapping: {user.email: user.mail}",
            "configuration error: field_mapping.user.email: not a CAPI field path",
        ),
        (
            "event_mapping: {purchase: Order_Created}",
            "configuration error: event_mapping.purchase: 'Order_Created' is not a CAPI event type",
        ),
        (
            "field_mapping: {data.type: kind}",
            "configuration error: field_mapping.data.type: "
            "a CAPI field no CA value maps to; it cannot be configured",
        ),
        (
            "field_mapping: {source_url: 'context..url'}",
            "configuration error: field_mapping.source_url: 'context..url' is not a dotted CA path",
        ),
        (
            "field_mapping: {data.contents.X.amount: price}",
            "configuration error: field_mapping.data.contents.X.amount: "
            "'price': a content field reads an item path, `items.X.<path>`",
        ),
        (
            "field_mapping: {data.amount: items.X.price}",
            "configuration error: field_mapping.data.amount: "
            "'items.X.price': item paths (`items.X....`) are only for data.contents.X fields",
        ),
        (
            "defaults: {action_source: website}",
            "configuration error: defaults.action_source: 'website' is not an action source "
            "(email, mobile_app, offline, other, phone_call, physical_store, web or a CA synonym)",
        ),
        ("consent: {required: [1]}", "configuration error: consent.required: unknown key"),
    ],
)
def test_configuration_errors_name_the_dotted_key(tmp_path: Path, text: str, line: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    assert str(raised.value) == line


def test_a_file_with_only_mapping_keys_is_valid_and_compiles(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "event_mapping: {purchase: null, checkout_done: order_created}\n"
        "field_mapping: {data.amount: revenue, id: id}\n"
        "defaults: {action_source: Online}\n"
        "consent: {required_categories: [1, '2']}\n"
        "keep_url_query: true\n",
    )
    assert config.defaults.action_source == "web"  # translated once, at load time
    assert config.consent.required_categories == ["1", "2"]
    compiled = config.compile()
    assert isinstance(compiled, CompiledMapping)
    event = {
        **EVENT,
        "event_name": "checkout_done",
        "id": "order-9",
        "revenue": 10,
        "url": "https://x.example/a?b=c",
        "user": {"consent_categories": [1, 2]},
    }
    outcome = map_event(event, compiled, NOW)
    assert isinstance(outcome, Mapped)
    assert outcome.event["id"] == "order-9"
    assert outcome.event["action_source"] == "web"
    assert outcome.event["source_url"] == "https://x.example/a?b=c"
    assert outcome.event["data"] == {"type": "contents", "amount": 1000, "currency": "EUR"}


def test_environment_overrides_mapping_keys(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "event_mapping: {purchase: order_created}\n",
        environ={
            "CAPI_CONSUMER_EVENT_MAPPING": '{"purchase": "lead_created"}',
            "CAPI_CONSUMER_DEFAULTS__ACTION_SOURCE": "store",
        },
    )
    outcome = map_event(EVENT, config.compile(), NOW)
    assert isinstance(outcome, Mapped)
    assert outcome.event["type"] == "lead_created"
    assert outcome.event["action_source"] == "physical_store"


def test_mapping_settings_alone_validate_the_same_way() -> None:
    with pytest.raises(ValueError, match="is not a CAPI event type"):
        MappingSettings.model_validate({"event_mapping": {"purchase": "bought"}})
    assert MappingSettings().compile().event_types["purchase"] == "order_created"


def test_compile_refuses_what_validation_refuses() -> None:
    settings = MappingSettings.model_construct(
        event_mapping={},
        field_mapping={"user.email": "x"},
        defaults=MappingSettings().defaults,
        consent=MappingSettings().consent,
        keep_url_query=False,
    )
    with pytest.raises(
        ValueError, match=re.escape("field_mapping.user.email: not a CAPI field path")
    ):
        settings.compile()
