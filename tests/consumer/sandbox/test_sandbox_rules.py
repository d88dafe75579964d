"""`transforms.capi_rules`: every rule of openai-capi.md §11.2–11.4, valid and invalid."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from tests.consumer.sandbox.sandbox_helpers import NOW_MS, realistic_event
from transforms.capi_rules import (
    ACTION_SOURCES,
    EVENT_TYPES,
    REASONS,
    SHAPE_BY_TYPE,
    STRICT,
    WINDOW_FUTURE_MS,
    WINDOW_PAST_MS,
    Rules,
    Violation,
    dedup_name,
    in_window,
    normalize_event,
    validate_event,
    validate_integration_source,
)

DELETE = object()
HASH = "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"
UUID4 = "3f2b8c1e-9a4d-4e7b-8c21-5d6e7f8a9b0c"


def with_changes(event: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply `{"data.contents[0].quantity": 2, "user.cities": DELETE}` style changes."""
    for path, value in changes.items():
        parts: list[str | int] = [
            name or int(index) for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)
        ]
        node: Any = event
        for part in parts[:-1]:
            node = node[part]
        if value is DELETE:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value
    return event


def event_with(changes: dict[str, Any]) -> dict[str, Any]:
    return with_changes(realistic_event(), changes)


def minimal(event_type: str, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "e1",
        "type": event_type,
        "timestamp_ms": NOW_MS,
        "data": {"type": SHAPE_BY_TYPE[event_type]},
    }
    if event_type in ("app_installed", "app_opened"):
        event["action_source"] = "mobile_app"
    if event_type == "custom":
        event["custom_event_name"] = "newsletter_signup"
    event.update(extra)
    return event


def test_the_vocabulary_is_the_documented_one() -> None:
    assert len(EVENT_TYPES) == 13
    assert set(SHAPE_BY_TYPE.values()) == {
        "contents",
        "customer_action",
        "plan_enrollment",
        "custom",
    }
    assert SHAPE_BY_TYPE["subscription_created"] == "plan_enrollment"
    assert SHAPE_BY_TYPE["app_opened"] == "customer_action"
    assert "attribution_appended" not in EVENT_TYPES
    assert len(ACTION_SOURCES) == 7


def test_the_mapping_contract_example_output_is_valid() -> None:
    assert validate_event(realistic_event(), NOW_MS) is None


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_a_minimal_event_of_every_type_is_valid(event_type: str) -> None:
    assert validate_event(minimal(event_type), NOW_MS) is None


# (changes to the realistic event, expected field, expected reason)
INVALID: list[tuple[dict[str, Any], str, str]] = [
    # §11.2 envelope
    ({"foo": 1}, "foo", "unknown_key"),
    ({"event_name": "purchase"}, "event_name", "legacy_field"),
    ({"event_time_epoch_ms": NOW_MS}, "event_time_epoch_ms", "legacy_field"),
    ({"id": DELETE}, "id", "missing_field"),
    ({"id": 12345}, "id", "invalid_type"),
    ({"id": None}, "id", "invalid_type"),
    ({"id": ""}, "id", "invalid_value"),
    ({"type": DELETE}, "type", "missing_field"),
    ({"type": "purchase"}, "type", "unknown_event_type"),
    ({"type": "attribution_appended"}, "type", "unknown_event_type"),
    ({"type": ["order_created"]}, "type", "invalid_type"),
    ({"timestamp_ms": DELETE}, "timestamp_ms", "missing_field"),
    ({"timestamp_ms": float(NOW_MS)}, "timestamp_ms", "invalid_type"),
    ({"timestamp_ms": str(NOW_MS)}, "timestamp_ms", "invalid_type"),
    ({"timestamp_ms": True}, "timestamp_ms", "invalid_type"),
    ({"timestamp_ms": NOW_MS - WINDOW_PAST_MS - 1}, "timestamp_ms", "timestamp_out_of_window"),
    ({"timestamp_ms": NOW_MS + WINDOW_FUTURE_MS + 1}, "timestamp_ms", "timestamp_out_of_window"),
    ({"timestamp_ms": NOW_MS // 1000}, "timestamp_ms", "timestamp_out_of_window"),  # seconds
    ({"custom_event_name": "signup"}, "custom_event_name", "field_not_allowed"),
    ({"action_source": "online"}, "action_source", "invalid_value"),
    ({"action_source": "WEB"}, "action_source", "invalid_value"),
    ({"action_source": 1}, "action_source", "invalid_type"),
    ({"source_url": DELETE}, "source_url", "missing_field"),
    ({"source_url": "shop.example.com/checkout"}, "source_url", "invalid_value"),
    ({"source_url": "/checkout"}, "source_url", "invalid_value"),
    ({"source_url": "https://"}, "source_url", "invalid_value"),
    ({"source_url": "https:///checkout"}, "source_url", "invalid_value"),
    ({"source_url": "ftp://files.example.com/x"}, "source_url", "invalid_value"),
    ({"source_url": "javascript:alert(1)"}, "source_url", "invalid_value"),
    ({"source_url": 7}, "source_url", "invalid_type"),
    ({"opt_out": "true"}, "opt_out", "invalid_type"),
    ({"opt_out": 0}, "opt_out", "invalid_type"),
    ({"oppref": 12}, "oppref", "invalid_type"),
    ({"oppref": ""}, "oppref", "invalid_value"),
    ({"oppcref": "not-a-uuid"}, "oppcref", "invalid_value"),
    ({"oppcref": UUID4.upper()}, "oppcref", "invalid_value"),
    ({"oppcref": "3f2b8c1e-9a4d-1e7b-8c21-5d6e7f8a9b0c"}, "oppcref", "invalid_value"),  # v1
    ({"data": DELETE}, "data", "missing_field"),
    ({"data": []}, "data", "invalid_type"),
    ({"user": ["x"]}, "user", "invalid_type"),
    # §11.3 data
    ({"data.type": DELETE}, "data.type", "missing_field"),
    ({"data.type": "customer_action"}, "data.type", "data_type_mismatch"),
    ({"data.amount": "25.99"}, "data.amount", "invalid_type"),
    ({"data.amount": 25.99}, "data.amount", "invalid_type"),
    ({"data.amount": 2599.0}, "data.amount", "invalid_type"),
    ({"data.currency": DELETE}, "data.currency", "missing_field"),
    ({"data.currency": "usx"}, "data.currency", "invalid_currency"),
    ({"data.currency": "US"}, "data.currency", "invalid_currency"),
    ({"data.currency": 840}, "data.currency", "invalid_type"),
    ({"data.plan_id": "p1"}, "data.plan_id", "field_not_allowed"),
    ({"data.value": 25.99}, "data.value", "unknown_key"),
    ({"data.contents": {"id": "x"}}, "data.contents", "invalid_type"),
    ({"data.contents[0]": "sku_123"}, "data.contents[0]", "invalid_type"),
    ({"data.contents[0].price": 25}, "data.contents[0].price", "unknown_key"),
    ({"data.contents[0].id": 123}, "data.contents[0].id", "invalid_type"),
    ({"data.contents[0].group_id": 1}, "data.contents[0].group_id", "invalid_type"),
    ({"data.contents[0].name": None}, "data.contents[0].name", "invalid_type"),
    ({"data.contents[0].content_type": ""}, "data.contents[0].content_type", "invalid_value"),
    ({"data.contents[0].quantity": "1"}, "data.contents[0].quantity", "invalid_type"),
    ({"data.contents[0].quantity": 1.0}, "data.contents[0].quantity", "invalid_type"),
    ({"data.contents[0].amount": 25.99}, "data.contents[0].amount", "invalid_type"),
    ({"data.contents[0].currency": "EURO"}, "data.contents[0].currency", "invalid_currency"),
    (
        {"data.contents[0].variant_dict": {"size": 1}},
        "data.contents[0].variant_dict",
        "invalid_type",
    ),
    ({"data.contents[0].variant_dict": ["m"]}, "data.contents[0].variant_dict", "invalid_type"),
    # §11.4 user
    ({"user.emails_sha256": HASH}, "user.emails_sha256", "invalid_type"),
    ({"user.emails_sha256": [HASH, 5]}, "user.emails_sha256[1]", "invalid_type"),
    ({"user.countries": "US"}, "user.countries", "invalid_type"),
    ({"user.cities": [None]}, "user.cities[0]", "invalid_type"),
    ({"user.email_sha256": HASH}, "user.email_sha256", "legacy_field"),
    ({"user.external_id_sha256": HASH}, "user.external_id_sha256", "legacy_field"),
    ({"user.country": "US"}, "user.country", "legacy_field"),
    ({"user.city": "paris"}, "user.city", "legacy_field"),
    ({"user.zip_code": "75001"}, "user.zip_code", "legacy_field"),
    ({"user.phone_number_sha256": HASH}, "user.phone_number_sha256", "legacy_field"),
    ({"user.city_sha256": HASH}, "user.city_sha256", "legacy_field"),
    ({"user.external_id": "customer_123"}, "user.external_id", "legacy_field"),
    ({"user.date_of_birth": "1990-01-01"}, "user.date_of_birth", "unknown_key"),
    ({"user.ip_address": "999.1.1.1"}, "user.ip_address", "invalid_value"),
    ({"user.ip_address": "203.0.113.01"}, "user.ip_address", "invalid_value"),
    ({"user.ip_address": "localhost"}, "user.ip_address", "invalid_value"),
    ({"user.ip_address": ["203.0.113.1"]}, "user.ip_address", "invalid_type"),
    ({"user.user_agent": ""}, "user.user_agent", "invalid_value"),
    ({"user.user_agent": "   "}, "user.user_agent", "invalid_value"),
    ({"user.obref": " "}, "user.obref", "invalid_value"),
    ({"user.obref": 5}, "user.obref", "invalid_type"),
    ({"user.android_advertising_id": "not-a-uuid"}, "user.android_advertising_id", "invalid_value"),
]


@pytest.mark.parametrize(("changes", "field", "reason"), INVALID, ids=lambda v: str(v)[:50])
def test_an_invalid_event_names_the_field_and_reason(
    changes: dict[str, Any], field: str, reason: str
) -> None:
    violation = validate_event(event_with(changes), NOW_MS)
    assert violation is not None
    assert (violation.field, violation.reason) == (field, reason)
    assert violation.reason in REASONS
    assert violation.message


# Variants of the realistic event that stay valid (the other side of the rules above).
VALID: list[dict[str, Any]] = [
    {"timestamp_ms": NOW_MS - WINDOW_PAST_MS},  # both window ends are inside
    {"timestamp_ms": NOW_MS + WINDOW_FUTURE_MS},
    {"action_source": "offline", "source_url": DELETE},
    {"action_source": DELETE, "source_url": DELETE},
    {"action_source": "physical_store"},  # a source_url on a non-web event is still checked
    {"source_url": "HTTP://Shop.Example.com"},
    {"source_url": "https://user:pw@shop.example.com:8443/p?q=1#f"},
    {"source_url": "https://[2001:db8::1]/checkout"},
    {"opt_out": True},
    {"opt_out": False},
    {"oppref": DELETE},
    {"oppref": " opaque/+=value "},  # byte for byte, never trimmed
    {"oppcref": UUID4},
    {"data.currency": "usd"},  # [N] uppercased by the API
    {"data.amount": 0},
    {"data.amount": -2599},  # [U] negative amounts accepted
    {"data.amount": DELETE},  # a currency alone is fine
    {"data.amount": DELETE, "data.currency": DELETE, "data.contents[0].amount": DELETE},
    {"data.contents": []},
    {"data.contents[0].currency": "eur"},
    {"data.contents[0].quantity": -1},
    {
        "data.contents[0].group_id": "g1",
        "data.contents[0].variant_dict": {"size": "m", "color": "red"},
    },
    {"data.contents[0].content_type": DELETE},
    {"user": DELETE},
    {"user": {}},
    {"user.emails_sha256": ["ABC", "not a hash", HASH]},  # [U] invalid values dropped
    {"user.emails_sha256": [HASH] * 5},  # [L] extras ignored
    {"user.postal_codes": ["75001!"]},
    {"user.countries": ["us", "France", "XX"]},
    {"user.regions": ["  Île-de-France  "]},
    {"user.cities": ["x" * 500]},
    {"user.first_names_sha256": [HASH], "user.last_names_sha256": []},
    {"user.ip_address": "2001:db8::1"},
    {"user.ip_address": "::ffff:203.0.113.1"},
    {"user.android_advertising_id": "00000000-0000-0000-0000-000000000000"},  # [L] ignored
    {"user.android_advertising_id": "38400000-8CF0-11BD-B23E-10B96E40000D"},
    {"user.obref": "obref-value"},
]


@pytest.mark.parametrize("changes", VALID, ids=lambda v: str(v)[:50])
def test_a_valid_variant_is_accepted(changes: dict[str, Any]) -> None:
    assert validate_event(event_with(changes), NOW_MS) is None


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ({"custom_event_name": DELETE}, "custom_event_name", "missing_field"),
        ({"custom_event_name": 5}, "custom_event_name", "invalid_type"),
        ({"custom_event_name": ""}, "custom_event_name", "invalid_custom_event_name"),
        ({"custom_event_name": "news letter"}, "custom_event_name", "invalid_custom_event_name"),
        ({"custom_event_name": "-signup"}, "custom_event_name", "invalid_custom_event_name"),
        ({"custom_event_name": "signup_"}, "custom_event_name", "invalid_custom_event_name"),
        ({"custom_event_name": "a" * 65}, "custom_event_name", "invalid_custom_event_name"),
        ({"custom_event_name": "inscrição"}, "custom_event_name", "invalid_custom_event_name"),
        ({"custom_event_name": "order_created"}, "custom_event_name", "invalid_custom_event_name"),
        ({"custom_event_name": "Custom"}, "custom_event_name", "invalid_custom_event_name"),
        ({"data": {"type": "contents"}}, "data.type", "data_type_mismatch"),
        ({"data": {"type": "custom", "plan_id": 7}}, "data.plan_id", "invalid_type"),
    ],
)
def test_custom_event_rules(extra: dict[str, Any], field: str, reason: str) -> None:
    event = with_changes(minimal("custom"), extra)
    violation = validate_event(event, NOW_MS)
    assert violation is not None
    assert (violation.field, violation.reason) == (field, reason)


@pytest.mark.parametrize("name", ["Newsletter_Signup", "a", "a" * 64, "sign-up-2", "0"])
def test_custom_event_names_that_are_valid_after_lowercasing(name: str) -> None:
    event = minimal("custom", custom_event_name=name)
    event["data"].update({"plan_id": "gold", "anything": {"nested": [1, None]}, "n": None})
    assert validate_event(event, NOW_MS) is None
    assert dedup_name(event) == name.lower()


@pytest.mark.parametrize(
    ("event", "field", "reason"),
    [
        (minimal("app_installed", action_source=DELETE), "action_source", "missing_field"),
        (minimal("app_opened", action_source="web"), "action_source", "invalid_value"),
        (minimal("lead_created", data={"type": "customer_action", "contents": []}),
         "data.contents", "field_not_allowed"),
        (minimal("lead_created", data={"type": "customer_action", "plan_id": "p"}),
         "data.plan_id", "field_not_allowed"),
        (minimal("trial_started", data={"type": "plan_enrollment", "plan_id": 3}),
         "data.plan_id", "invalid_type"),
        (minimal("trial_started", data={"type": "plan_enrollment", "coupon": "x"}),
         "data.coupon", "unknown_key"),
        (minimal("page_viewed", oppcref=UUID4, type="lead_created",
                 data={"type": "customer_action"}), "oppcref", "field_not_allowed"),
        (minimal("page_viewed", data={"type": "contents", "contents": [{"amount": 5}]}),
         "data.contents[0].currency", "missing_field"),
    ],
)  # fmt: skip
def test_rules_that_depend_on_the_event_type(
    event: dict[str, Any], field: str, reason: str
) -> None:
    event = {key: value for key, value in event.items() if value is not DELETE}
    violation = validate_event(event, NOW_MS)
    assert violation is not None
    assert (violation.field, violation.reason) == (field, reason)


@pytest.mark.parametrize(
    "event",
    [
        minimal("subscription_created", data={"type": "plan_enrollment", "plan_id": "gold",
                "amount": 999, "currency": "EUR", "contents": [{"id": "gold", "quantity": 1}]}),
        minimal("page_viewed", data={"type": "contents",
                "contents": [{"amount": 5, "currency": "JPY"}]}),
        minimal("page_viewed", oppcref=UUID4),
        minimal("app_opened", user={"android_advertising_id": UUID4}),
    ],
)  # fmt: skip
def test_valid_events_of_other_shapes(event: dict[str, Any]) -> None:
    assert validate_event(event, NOW_MS) is None


def test_the_error_names_the_index_of_the_bad_content_item() -> None:
    event = realistic_event()
    event["data"]["contents"] = [{"id": "a"}, {"id": "b"}, {"id": "c", "quantity": "2"}]
    assert validate_event(event, NOW_MS) == Violation(
        "data.contents[2].quantity", "must be a JSON integer", "invalid_type"
    )


def test_a_non_object_event_is_rejected() -> None:
    not_objects: list[object] = [[], "event", None, 5]
    for event in not_objects:
        violation = validate_event(event, NOW_MS)
        assert violation is not None
        assert (violation.field, violation.reason) == ("", "not_an_object")


# --- every [U] choice has its default and a setting that changes it ---------------------------

# (rules, changes, violation under STRICT or None, violation under `rules` or None)
UNDOCUMENTED: list[tuple[Rules, dict[str, Any], tuple[str, str] | None, tuple[str, str] | None]] = [
    (Rules(reject_unknown_fields=False), {"foo": 1, "data.bar": 2, "user.baz": 3},
     ("foo", "unknown_key"), None),
    (Rules(reject_unknown_fields=False), {"event_id": "x"}, ("event_id", "legacy_field"), None),
    (Rules(reject_unknown_fields=False), {"data.contents[0].price": 1},  # [D]: always rejected
     ("data.contents[0].price", "unknown_key"), ("data.contents[0].price", "unknown_key")),
    (Rules(reject_unknown_fields=False), {"data.plan_id": "p"},  # [D]: always rejected
     ("data.plan_id", "field_not_allowed"), ("data.plan_id", "field_not_allowed")),
    (Rules(accept_legacy_user_fields=True),
     {"user.email_sha256": HASH, "user.country": "FR", "user.city": "Paris", "user.zip_code": "75"},
     ("user.email_sha256", "legacy_field"), None),
    (Rules(accept_legacy_user_fields=True), {"user.email_sha256": [HASH]},
     ("user.email_sha256", "legacy_field"), ("user.email_sha256", "invalid_type")),
    (Rules(accept_legacy_user_fields=True), {"user.phone_number_sha256": HASH},
     ("user.phone_number_sha256", "legacy_field"), ("user.phone_number_sha256", "legacy_field")),
    (Rules(reject_custom_event_name_on_standard_event=False), {"custom_event_name": 5},
     ("custom_event_name", "field_not_allowed"), None),
    (Rules(accept_negative_amounts=False), {"data.amount": -1},
     None, ("data.amount", "invalid_value")),
    (Rules(accept_negative_amounts=False), {"data.contents[0].quantity": -1},
     None, ("data.contents[0].quantity", "invalid_value")),
    (Rules(accept_negative_amounts=False), {"data.contents[0].amount": -1},
     None, ("data.contents[0].amount", "invalid_value")),
    (Rules(item_amount_requires_currency=False), {"data.amount": DELETE, "data.currency": DELETE},
     ("data.contents[0].currency", "missing_field"), None),
    (Rules(accept_attribution_appended=True),
     {"type": "attribution_appended", "data": {"type": "attribution", "original_id": "o1"}},
     ("type", "unknown_event_type"), None),
    (Rules(accept_attribution_appended=True),
     {"type": "attribution_appended"}, ("type", "unknown_event_type"),
     ("data.type", "data_type_mismatch")),
    (Rules(oppcref="ignore"), {"oppcref": "anything"}, ("oppcref", "invalid_value"), None),
    (Rules(oppcref="reject"), {"oppcref": UUID4}, None, ("oppcref", "unknown_key")),
    (Rules(drop_invalid_user_values=False), {"user.emails_sha256": [HASH, HASH.upper()]},
     None, ("user.emails_sha256[1]", "invalid_value")),
    (Rules(drop_invalid_user_values=False), {"user.postal_codes": ["75001", "75-001!"]},
     None, ("user.postal_codes[1]", "invalid_value")),
    (Rules(drop_invalid_user_values=False), {"user.postal_codes": ["1" * 33]},
     None, ("user.postal_codes[0]", "invalid_value")),
    (Rules(drop_invalid_user_values=False), {"user.countries": ["us", "ß"]},
     None, ("user.countries[1]", "invalid_value")),
    (Rules(drop_invalid_user_values=False, countries_case_insensitive=False),
     {"user.countries": ["us"]}, None, ("user.countries[0]", "invalid_value")),
    (Rules(reject_empty_oppref=False), {"oppref": ""}, ("oppref", "invalid_value"), None),
    (Rules(source_url_http_only=False), {"source_url": "android-app://com.shop/checkout"},
     ("source_url", "invalid_value"), None),
    (Rules(source_url_http_only=False), {"source_url": "ftp:/no-host"},
     ("source_url", "invalid_value"), ("source_url", "invalid_value")),
    (Rules(timestamp_window_inclusive=False), {"timestamp_ms": NOW_MS - WINDOW_PAST_MS},
     None, ("timestamp_ms", "timestamp_out_of_window")),
    (Rules(timestamp_window_inclusive=False), {"timestamp_ms": NOW_MS + WINDOW_FUTURE_MS},
     None, ("timestamp_ms", "timestamp_out_of_window")),
]  # fmt: skip


@pytest.mark.parametrize(("rules", "changes", "strict", "relaxed"), UNDOCUMENTED)
def test_each_undocumented_choice_has_a_default_and_a_setting(
    rules: Rules,
    changes: dict[str, Any],
    strict: tuple[str, str] | None,
    relaxed: tuple[str, str] | None,
) -> None:
    def outcome(violation: Violation | None) -> tuple[str, str] | None:
        return None if violation is None else (violation.field, violation.reason)

    assert outcome(validate_event(event_with(changes), NOW_MS)) == strict
    assert outcome(validate_event(event_with(changes), NOW_MS, rules)) == relaxed


def test_every_rules_field_is_exercised_above() -> None:
    changed = {
        field.name
        for rules, *_ in UNDOCUMENTED
        for field in dataclasses.fields(Rules)
        if getattr(rules, field.name) != getattr(STRICT, field.name)
    }
    assert changed == {field.name for field in dataclasses.fields(Rules)}


# --- window, integration_source, messages, normalization --------------------------------------


def test_the_window_is_inclusive_at_both_ends() -> None:
    assert in_window(NOW_MS - WINDOW_PAST_MS, NOW_MS)
    assert in_window(NOW_MS + WINDOW_FUTURE_MS, NOW_MS)
    assert not in_window(NOW_MS - WINDOW_PAST_MS - 1, NOW_MS)
    assert not in_window(NOW_MS + WINDOW_FUTURE_MS + 1, NOW_MS)
    assert WINDOW_PAST_MS == 7 * 24 * 3600 * 1000
    assert WINDOW_FUTURE_MS == 10 * 60 * 1000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acme_kafka_bridge", "acme_kafka_bridge"),
        ("  Acme.Bridge-2  ", "acme.bridge-2"),
        ("0", "0"),
        ("a" * 64, "a" * 64),
        ("a" * 65, None),
        ("", None),
        ("   ", None),
        ("_acme", None),
        ("acme bridge", None),
        ("acmé", None),
        ("acme/bridge", None),
        (None, None),
        (42, None),
    ],
)
def test_integration_source(value: object, expected: str | None) -> None:
    assert validate_integration_source(value) == expected


SECRETS = ("order_12345", HASH, "203.0.113.1", "Mozilla", "oppref_abc", "shop.example.com")


@pytest.mark.parametrize(("changes", "field", "reason"), INVALID, ids=lambda v: str(v)[:50])
def test_messages_never_echo_a_value(changes: dict[str, Any], field: str, reason: str) -> None:
    violation = validate_event(event_with(changes), NOW_MS)
    assert violation is not None
    values = [v for v in changes.values() if isinstance(v, str) and len(v) > 2]
    for value in (*SECRETS, *values):
        assert value not in violation.message


def test_normalize_event_keeps_what_the_api_keeps() -> None:
    event = realistic_event(
        type="custom",
        custom_event_name="Newsletter_Signup",
        data={"type": "custom", "amount": 5, "currency": "eur", "contents": [{"currency": "usd"}]},
    )
    event["user"] = {
        "emails_sha256": ["bad", HASH, HASH, "c" * 64, "d" * 64, "e" * 64],
        "countries": ["fr", "France", "FR", "de"],
        "cities": ["  San Francisco ", "x" * 300],
        "postal_codes": [" 94107 ", "bad!"],
        "android_advertising_id": "00000000-0000-0000-0000-000000000000",
        "user_agent": "Mozilla/5.0",
    }
    assert validate_event(event, NOW_MS) is None
    normalized = normalize_event(event)
    assert normalized["custom_event_name"] == "newsletter_signup"
    assert normalized["data"]["currency"] == "EUR"
    assert normalized["data"]["contents"] == [{"currency": "USD"}]
    assert normalized["user"] == {
        "emails_sha256": [HASH, "c" * 64, "d" * 64],
        "countries": ["FR", "DE"],
        "cities": ["san francisco", "x" * 128],
        "postal_codes": ["94107"],
        "user_agent": "Mozilla/5.0",
    }
    assert event["custom_event_name"] == "Newsletter_Signup"  # the input is not changed


def test_normalize_drops_what_lenient_rules_accepted() -> None:
    rules = Rules(reject_custom_event_name_on_standard_event=False, oppcref="ignore",
                  accept_legacy_user_fields=True)  # fmt: skip
    event = realistic_event(custom_event_name="x", oppcref="junk")
    event["user"] = {"email_sha256": HASH, "country": "fr", "city": " Paris "}
    assert validate_event(event, NOW_MS, rules) is None
    normalized = normalize_event(event, rules)
    assert "custom_event_name" not in normalized
    assert "oppcref" not in normalized
    assert normalized["user"] == {"email_sha256": HASH, "country": "FR", "city": "paris"}
