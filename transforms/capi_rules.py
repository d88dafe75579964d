"""What the OpenAI Conversions API accepts (openai-capi.md §11), as data and pure checks.

The one source of truth for the API's rules: the sandbox enforces them, the consumer checks each
event with them before sending, and the property tests assert the transform's output passes them.
Pure: no I/O, no clock (`now_ms` is passed in), no logging. Messages never echo a value, only
field paths, so they are safe to log.

Every undocumented behaviour ([U] in §11) is a field of `Rules` with §11's default; `STRICT` is
that default. Checks stop at the first violation, in this order: unknown envelope keys → JSON
types of the envelope fields (in key order) → `id` → `type` → `timestamp_ms` →
`custom_event_name` → `action_source` → `source_url` → `oppref` → `oppcref` → `data` (`type`,
keys, JSON types, amount, currency, then each content item in index order) → `user` (key order).

`null` is never a valid value: an optional field is either absent or of its type (an assumption;
the API's treatment of `null` is undocumented, and rejecting it is the safe side for a sender).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

from transforms.codes import COUNTRY_ALPHA2, CURRENCY_EXPONENTS

# --- the API's vocabulary ------------------------------------------------------------------

SHAPE_BY_TYPE: Final[Mapping[str, str]] = MappingProxyType(
    {
        "app_installed": "customer_action",
        "app_opened": "customer_action",
        "appointment_scheduled": "customer_action",
        "checkout_started": "contents",
        "contents_viewed": "contents",
        "custom": "custom",
        "items_added": "contents",
        "lead_created": "customer_action",
        "order_created": "contents",
        "page_viewed": "contents",
        "registration_completed": "customer_action",
        "subscription_created": "plan_enrollment",
        "trial_started": "plan_enrollment",
    }
)
EVENT_TYPES: Final[frozenset[str]] = frozenset(SHAPE_BY_TYPE)
ACTION_SOURCES: Final[frozenset[str]] = frozenset(
    {"web", "mobile_app", "offline", "physical_store", "phone_call", "email", "other"}
)
APP_EVENT_TYPES: Final[frozenset[str]] = frozenset({"app_installed", "app_opened"})
# Tealium-JA only (§7); accepted only with `Rules.accept_attribution_appended`.
ATTRIBUTION_TYPE: Final = "attribution_appended"
ATTRIBUTION_SHAPE: Final = "attribution"

WINDOW_PAST_MS: Final[int] = 7 * 24 * 3600 * 1000
WINDOW_FUTURE_MS: Final[int] = 10 * 60 * 1000
MAX_EVENTS_PER_REQUEST: Final[int] = 1000
# [L] per user list, the API uses the first three valid unique values and ignores the rest.
USER_LIST_VALUES_USED: Final[int] = 3
USER_TEXT_MAX_CHARS: Final[int] = 128
CURRENCIES: Final[frozenset[str]] = frozenset(CURRENCY_EXPONENTS)

ENVELOPE_KEYS: Final[frozenset[str]] = frozenset(
    {
        "id",
        "type",
        "timestamp_ms",
        "custom_event_name",
        "oppref",
        "source_url",
        "action_source",
        "user",
        "opt_out",
        "data",
    }
)
# Pre-public names that OpenAI's plugin calls legacy/removed.
LEGACY_ENVELOPE_KEYS: Final[frozenset[str]] = frozenset(
    {"event_name", "event_time_epoch_ms", "event_id", "event_source_url", "event_data"}
)
OPPCREF_TYPES: Final[frozenset[str]] = frozenset(
    {"checkout_started", "items_added", "order_created", "page_viewed"}
)
DATA_KEYS_BY_SHAPE: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "contents": frozenset({"type", "amount", "currency", "contents"}),
        "customer_action": frozenset({"type", "amount", "currency"}),
        "plan_enrollment": frozenset({"type", "amount", "currency", "contents", "plan_id"}),
    }
)
# Shapes that take any extra key (custom fields).
OPEN_SHAPES: Final[frozenset[str]] = frozenset({"custom", ATTRIBUTION_SHAPE})
CONTENT_ITEM_KEYS: Final[frozenset[str]] = frozenset(
    {"id", "group_id", "name", "content_type", "quantity", "amount", "currency", "variant_dict"}
)

USER_HASH_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "emails_sha256",
        "phone_numbers_sha256",
        "external_ids_sha256",
        "first_names_sha256",
        "last_names_sha256",
    }
)
USER_TEXT_FIELDS: Final[frozenset[str]] = frozenset({"regions", "cities"})
USER_LIST_FIELDS: Final[frozenset[str]] = (
    USER_HASH_FIELDS
    | USER_TEXT_FIELDS
    | {
        "postal_codes",
        "countries",
    }
)
USER_SCALAR_FIELDS: Final[frozenset[str]] = frozenset(
    {"android_advertising_id", "obref", "ip_address", "user_agent"}
)
# r2–r4 singular fields: accepted only with `Rules.accept_legacy_user_fields`.
LEGACY_USER_FIELDS: Final[frozenset[str]] = frozenset(
    {"email_sha256", "external_id_sha256", "country", "city", "zip_code"}
)
# Third-party shapes that never matched OpenAI's (Commanders Act, Stape, RudderStack): always
# rejected, so a sender cannot believe they are used.
FOREIGN_USER_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "phone_number_sha256",
        "country_sha256",
        "city_sha256",
        "zip_code_sha256",
        "external_id",
        "countries_sha256",
        "cities_sha256",
        "regions_sha256",
        "postal_codes_sha256",
        "date_of_births_sha256",
    }
)

Reason = Literal[
    "not_an_object",
    "missing_field",
    "invalid_type",
    "invalid_value",
    "unknown_key",
    "legacy_field",
    "field_not_allowed",
    "unknown_event_type",
    "timestamp_out_of_window",
    "invalid_custom_event_name",
    "data_type_mismatch",
    "invalid_currency",
]
REASONS: Final[frozenset[str]] = frozenset(get_args(Reason))

_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_CUSTOM_EVENT_NAME: Final = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?")
_INTEGRATION_SOURCE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_POSTAL_CODE: Final = re.compile(r"[A-Za-z0-9 -]{1,32}")
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_OPPCREF: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# scheme://[userinfo@]host[:port][/path?query#fragment]; a regex, because urlsplit costs
# ~1.5 µs per uncached URL and every event of a web batch has a different one.
_URL_AFTER_SCHEME: Final = (
    r"://(?:[^/?#@\s]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^/?#:@\[\]\s]+)(?::\d*)?(?:[/?#].*)?"
)
_HTTP_URL: Final = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?" + _URL_AFTER_SCHEME, re.DOTALL)
_ANY_URL: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*" + _URL_AFTER_SCHEME, re.DOTALL)
_OCTET: Final = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_ZERO_UUID: Final = "00000000-0000-0000-0000-000000000000"


# --- the undocumented choices ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rules:
    """Every behaviour OpenAI does not document ([U] in §11), with §11's default.

    The sandbox's `rules` config section is this dataclass (pydantic validates it directly).
    """

    # Unknown keys in the envelope (incl. the legacy `event_name`, ...), in `data` of the
    # closed shapes, in `user` and at the request root. Content items always reject them ([D]).
    reject_unknown_fields: bool = True
    # r2–r4 singular user fields (`email_sha256`, `external_id_sha256`, `country`, `city`,
    # `zip_code`): rejected in strict r5 mode, validated like their plural forms otherwise.
    accept_legacy_user_fields: bool = False
    # `custom_event_name` on a standard event: rejected, or ignored when false.
    reject_custom_event_name_on_standard_event: bool = True
    # Negative `amount` / `quantity` (event and items).
    accept_negative_amounts: bool = True
    # An item `amount` with neither an item nor an event `currency`.
    item_amount_requires_currency: bool = True
    # `attribution_appended` (Tealium-JA only): data shape `attribution`, any data keys.
    accept_attribution_appended: bool = False
    # `oppcref` (r4 only): "validate" = lowercase UUID v4 on checkout_started, items_added,
    # order_created, page_viewed; "ignore" = accept any value; "reject" = an unknown key (r5).
    oppcref: Literal["validate", "ignore", "reject"] = "validate"
    # Invalid hashes, postal codes and countries in `user`: dropped silently, or rejected.
    drop_invalid_user_values: bool = True
    # `countries`: `us` is read as `US`; when false only upper case is valid.
    countries_case_insensitive: bool = True
    # `oppref: ""`.
    reject_empty_oppref: bool = True
    # `source_url` schemes: only http/https, or any scheme with a host when false.
    source_url_http_only: bool = True
    # Both ends of the timestamp window belong to it.
    timestamp_window_inclusive: bool = True


STRICT: Final[Rules] = Rules()


@dataclass(frozen=True, slots=True)
class Violation:
    """The first rule an event breaks.

    `field` is the path inside the event (`data.contents[2].quantity`, `user.countries`; empty
    for the event itself); `message` completes a sentence that starts with that path and never
    contains a value; `reason` is a short stable code (one of `REASONS`).
    """

    field: str
    message: str
    reason: str


# --- checks -----------------------------------------------------------------------------------


def in_window(timestamp_ms: int, now_ms: int) -> bool:
    """`now − 7 days ≤ timestamp_ms ≤ now + 10 minutes` (inclusive both ends)."""
    return now_ms - WINDOW_PAST_MS <= timestamp_ms <= now_ms + WINDOW_FUTURE_MS


def validate_integration_source(value: object) -> str | None:
    """The normalized value (trimmed, lowercased), or None when it is not a valid one."""
    if type(value) is not str:
        return None
    normalized = value.strip().lower()
    if normalized.isascii() and _INTEGRATION_SOURCE.fullmatch(normalized):
        return normalized
    return None


def dedup_name(event: Mapping[str, Any]) -> str:
    """The event name of the dedup key of a valid event: `custom_event_name` (lowercased) for
    `custom`, else `type`."""
    event_type: str = event["type"]
    if event_type == "custom":
        name: str = event["custom_event_name"]
        return name.lower()
    return event_type


def _v(field: str, message: str, reason: Reason) -> Violation:
    return Violation(field, message, reason)


# JSON types by field. `type(value) is T` (never isinstance): a bool is not an int, and neither
# 1.0 nor null is anything else. Fields checked later with their own rule are left out.
_ENVELOPE_FIELD_TYPES: Final[dict[str, type]] = {
    "id": str,
    "type": str,
    "timestamp_ms": int,
    "oppref": str,
    "source_url": str,
    "action_source": str,
    "user": dict,
    "opt_out": bool,
    "data": dict,
}
_DATA_FIELD_TYPES: Final[dict[str, type]] = {
    "type": str,
    "amount": int,
    "currency": str,
    "contents": list,
    "plan_id": str,
}
_ITEM_FIELD_TYPES: Final[dict[str, type]] = {
    "id": str,
    "group_id": str,
    "name": str,
    "content_type": str,
    "quantity": int,
    "amount": int,
    "currency": str,
    "variant_dict": dict,
}
_TYPE_NAMES: Final[dict[type, str]] = {
    str: "must be a string",
    int: "must be a JSON integer",
    bool: "must be a boolean",
    dict: "must be a JSON object",
    list: "must be an array",
}
_SHAPES: Final[dict[str, str]] = dict(SHAPE_BY_TYPE)
_CLOSED_SHAPE_KEYS: Final[dict[str, frozenset[str]]] = dict(DATA_KEYS_BY_SHAPE)


def _first_wrong_type(
    container: dict[str, Any], types: dict[str, type], prefix: str
) -> Violation | None:
    for key, value in container.items():
        expected = types.get(key)
        if expected is not None and type(value) is not expected:
            return _v(prefix + key, _TYPE_NAMES[expected], "invalid_type")
    return None


def validate_event(event: object, now_ms: int, rules: Rules = STRICT) -> Violation | None:
    """The first rule `event` (one element of `events`) breaks, or None when it is valid.

    Order: unknown keys, then JSON types (key order), then required fields and values in the
    order of the module docstring.
    """
    if type(event) is not dict:
        return _v("", "must be a JSON object", "not_an_object")
    if not event.keys() <= ENVELOPE_KEYS:
        violation = _unknown_envelope_key(event, rules)
        if violation is not None:
            return violation
    violation = _first_wrong_type(event, _ENVELOPE_FIELD_TYPES, "")
    if violation is not None:
        return violation

    # Types are right from here on: `get()` returning None means absent.
    event_id = event.get("id")
    if event_id is None:
        return _v("id", "is required", "missing_field")
    if not event_id:
        return _v("id", "must not be empty", "invalid_value")

    event_type = event.get("type")
    if event_type is None:
        return _v("type", "is required", "missing_field")
    shape = _SHAPES.get(event_type)
    if shape is None:
        if event_type != ATTRIBUTION_TYPE or not rules.accept_attribution_appended:
            return _v("type", "is not one of the 13 event types", "unknown_event_type")
        shape = ATTRIBUTION_SHAPE

    timestamp = event.get("timestamp_ms")
    if timestamp is None:
        return _v("timestamp_ms", "is required", "missing_field")
    if not (
        in_window(timestamp, now_ms)
        if rules.timestamp_window_inclusive
        else now_ms - WINDOW_PAST_MS < timestamp < now_ms + WINDOW_FUTURE_MS
    ):
        return _v(
            "timestamp_ms",
            "must be within the last 7 days and at most 10 minutes in the future",
            "timestamp_out_of_window",
        )

    if event_type == "custom":
        violation = _check_custom_event_name(event)
        if violation is not None:
            return violation
    elif "custom_event_name" in event and rules.reject_custom_event_name_on_standard_event:
        return _v("custom_event_name", "is only allowed on custom events", "field_not_allowed")

    action_source = event.get("action_source")
    if action_source is not None and action_source not in ACTION_SOURCES:
        return _v("action_source", "is not a valid action source", "invalid_value")
    if event_type in APP_EVENT_TYPES and action_source != "mobile_app":
        if action_source is None:
            return _v("action_source", "is required (mobile_app) on app events", "missing_field")
        return _v("action_source", "must be mobile_app on app events", "invalid_value")

    source_url = event.get("source_url")
    if source_url is None:
        if action_source == "web":
            return _v("source_url", "is required when action_source is web", "missing_field")
    elif not _is_source_url(source_url, rules.source_url_http_only):
        return _v("source_url", "must be a URL with a scheme and a host", "invalid_value")

    if event.get("oppref") == "" and rules.reject_empty_oppref:
        return _v("oppref", "must not be empty", "invalid_value")

    if rules.oppcref == "validate" and "oppcref" in event:
        violation = _check_oppcref(event["oppcref"], event_type)
        if violation is not None:
            return violation

    data = event.get("data")
    if data is None:
        return _v("data", "is required", "missing_field")
    violation = _check_data(data, shape, rules)
    if violation is not None:
        return violation

    user = event.get("user")
    return None if user is None else _check_user(user, rules)


def _unknown_envelope_key(event: dict[str, Any], rules: Rules) -> Violation | None:
    for key in event:
        if key in ENVELOPE_KEYS:
            continue
        if key == "oppcref" and rules.oppcref != "reject":
            continue
        if not rules.reject_unknown_fields:
            continue
        if key in LEGACY_ENVELOPE_KEYS:
            return _v(key, "is a legacy field name; use the r5 envelope", "legacy_field")
        return _v(key, "is not a known event field", "unknown_key")
    return None


def _check_custom_event_name(event: dict[str, Any]) -> Violation | None:
    if "custom_event_name" not in event:
        return _v("custom_event_name", "is required on custom events", "missing_field")
    value = event["custom_event_name"]
    if type(value) is not str:
        return _v("custom_event_name", "must be a string", "invalid_type")
    name = value.lower()
    if not (name.isascii() and _CUSTOM_EVENT_NAME.fullmatch(name)):
        return _v(
            "custom_event_name",
            "must be 1-64 letters, digits, _ or -, starting and ending with a letter or digit",
            "invalid_custom_event_name",
        )
    if name in EVENT_TYPES:
        return _v(
            "custom_event_name", "must not be a standard event name", "invalid_custom_event_name"
        )
    return None


def _check_oppcref(value: object, event_type: str) -> Violation | None:
    if event_type not in OPPCREF_TYPES:
        return _v("oppcref", "is not allowed on this event type", "field_not_allowed")
    if type(value) is not str or not _OPPCREF.fullmatch(value):
        return _v("oppcref", "must be a lowercase UUID v4", "invalid_value")
    return None


def _is_source_url(value: str, http_only: bool) -> bool:
    return (_HTTP_URL if http_only else _ANY_URL).fullmatch(value) is not None


def _check_data(data: dict[str, Any], shape: str, rules: Rules) -> Violation | None:
    data_type = data.get("type")
    if data_type is None and "type" not in data:
        return _v("data.type", "is required", "missing_field")
    if data_type != shape:
        return _v("data.type", f"must be {shape} for this event type", "data_type_mismatch")

    allowed = _CLOSED_SHAPE_KEYS.get(shape)  # None: an open shape, any extra key
    if allowed is not None and not data.keys() <= allowed:
        for key in data:
            if key in allowed:
                continue
            if key in _DATA_FIELD_TYPES:  # contents, plan_id
                return _v(f"data.{key}", f"is not allowed on {shape} data", "field_not_allowed")
            if rules.reject_unknown_fields:
                return _v(f"data.{key}", f"is not a field of {shape} data", "unknown_key")
    violation = _first_wrong_type(data, _DATA_FIELD_TYPES, "data.")
    if violation is not None:
        return violation

    amount = data.get("amount")
    if amount is not None and amount < 0 and not rules.accept_negative_amounts:
        return _v("data.amount", "must not be negative", "invalid_value")
    currency = data.get("currency")
    if currency is None:
        if amount is not None:
            return _v("data.currency", "is required when amount is given", "missing_field")
    elif currency.upper() not in CURRENCIES:
        return _v("data.currency", _CURRENCY_MESSAGE, "invalid_currency")

    contents = data.get("contents")
    if contents:
        item_currency_required = currency is None and rules.item_amount_requires_currency
        for index, item in enumerate(contents):
            violation = _check_item(item, index, rules, item_currency_required)
            if violation is not None:
                return violation
    return None


_CURRENCY_MESSAGE: Final = "must be an ISO 4217 currency code"


def _check_item(
    item: object, index: int, rules: Rules, currency_required: bool
) -> Violation | None:
    if type(item) is not dict:
        return _v(f"data.contents[{index}]", "must be a JSON object", "invalid_type")
    for key, value in item.items():
        expected = _ITEM_FIELD_TYPES.get(key)
        if expected is None:
            return _v(f"data.contents[{index}].{key}", "is not a content item field", "unknown_key")
        if type(value) is not expected:
            return _v(f"data.contents[{index}].{key}", _TYPE_NAMES[expected], "invalid_type")
    if item.get("content_type") == "":
        return _v(f"data.contents[{index}].content_type", "must not be empty", "invalid_value")
    if not rules.accept_negative_amounts:
        for key in ("quantity", "amount"):
            if item.get(key, 0) < 0:
                return _v(f"data.contents[{index}].{key}", "must not be negative", "invalid_value")
    currency = item.get("currency")
    if currency is None:
        if currency_required and "amount" in item:
            return _v(
                f"data.contents[{index}].currency",
                "is required when the item has an amount and the event has no currency",
                "missing_field",
            )
    elif currency.upper() not in CURRENCIES:
        return _v(f"data.contents[{index}].currency", _CURRENCY_MESSAGE, "invalid_currency")
    variants = item.get("variant_dict")
    if variants:
        for value in variants.values():
            if type(value) is not str:
                return _v(
                    f"data.contents[{index}].variant_dict",
                    "must map strings to strings",
                    "invalid_type",
                )
    return None


def _user_value_ok(kind: str, value: str, rules: Rules) -> bool:
    """Whether one value of a user list (or legacy scalar) is one the API would use."""
    if kind == "hash":
        return _HEX64.fullmatch(value) is not None
    if kind == "postal_code":
        return _POSTAL_CODE.fullmatch(value.strip()) is not None
    if kind == "country":
        code = value.upper() if rules.countries_case_insensitive else value
        # isascii: "ß".upper() is "SS" (South Sudan).
        return value.isascii() and code in COUNTRY_ALPHA2
    return True  # regions, cities: normalized, never invalid


def _is_ip_address(value: str) -> bool:
    if _IPV4.fullmatch(value):
        return True
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _check_user(user: dict[str, Any], rules: Rules) -> Violation | None:
    check_values = not rules.drop_invalid_user_values
    for field, value in user.items():
        kind = _USER_LIST_KIND.get(field)
        if kind is not None:
            if type(value) is not list:
                return _v(f"user.{field}", "must be an array of strings", "invalid_type")
            for element in value:
                if type(element) is not str or (
                    check_values and not _user_value_ok(kind, element, rules)
                ):
                    return _bad_list_element(field, value, kind, rules)
        elif field in USER_SCALAR_FIELDS:
            violation = _check_user_scalar(field, value)
            if violation is not None:
                return violation
        elif field in FOREIGN_USER_FIELDS:
            return _v(f"user.{field}", "is not an OpenAI user field", "legacy_field")
        elif field in LEGACY_USER_FIELDS:
            if not rules.accept_legacy_user_fields:
                return _v(
                    f"user.{field}", "is an r2-r4 singular field; use the r5 lists", "legacy_field"
                )
            if type(value) is not str:
                return _v(f"user.{field}", "must be a string", "invalid_type")
            if check_values and not _user_value_ok(_USER_LEGACY_KIND[field], value, rules):
                return _v(f"user.{field}", _INVALID_USER[field], "invalid_value")
        elif rules.reject_unknown_fields:
            return _v(f"user.{field}", "is not a known user field", "unknown_key")
    return None


def _bad_list_element(field: str, values: list[Any], kind: str, rules: Rules) -> Violation:
    for index, element in enumerate(values):
        if type(element) is not str:
            return _v(f"user.{field}[{index}]", "must be a string", "invalid_type")
        if not _user_value_ok(kind, element, rules):
            return _v(f"user.{field}[{index}]", _INVALID_USER[field], "invalid_value")
    raise AssertionError("called without a bad element")  # pragma: no cover


def _check_user_scalar(field: str, value: object) -> Violation | None:
    if type(value) is not str:
        return _v(f"user.{field}", "must be a string", "invalid_type")
    if field == "ip_address":
        ok = _is_ip_address(value)
    elif field == "android_advertising_id":
        ok = _UUID.fullmatch(value) is not None
    else:  # obref, user_agent
        ok = bool(value.strip())
    return None if ok else _v(f"user.{field}", _INVALID_USER[field], "invalid_value")


# The rule each user list's values follow, and the same for the r2–r4 singular forms.
_USER_LIST_KIND: Final[dict[str, str]] = {
    **dict.fromkeys(USER_HASH_FIELDS, "hash"),
    **dict.fromkeys(USER_TEXT_FIELDS, "text"),
    "postal_codes": "postal_code",
    "countries": "country",
}
_USER_LEGACY_KIND: Final[dict[str, str]] = {
    "email_sha256": "hash",
    "external_id_sha256": "hash",
    "city": "text",
    "zip_code": "postal_code",
    "country": "country",
}
_HASH_MESSAGE: Final = "must be a lowercase hex SHA-256 digest (64 characters)"
_INVALID_USER: Final[Mapping[str, str]] = MappingProxyType(
    {
        **dict.fromkeys(USER_HASH_FIELDS, _HASH_MESSAGE),
        "email_sha256": _HASH_MESSAGE,
        "external_id_sha256": _HASH_MESSAGE,
        "postal_codes": "must be at most 32 letters, digits, spaces or hyphens",
        "zip_code": "must be at most 32 letters, digits, spaces or hyphens",
        "countries": "must be an ISO 3166-1 alpha-2 country code",
        "country": "must be an ISO 3166-1 alpha-2 country code",
        "ip_address": "must be a valid IPv4 or IPv6 address",
        "android_advertising_id": "must be a UUID",
        "obref": "must not be blank",
        "user_agent": "must not be blank",
    }
)


# --- normalization ([N] and [L]) -------------------------------------------------------------


def normalize_event(event: Mapping[str, Any], rules: Rules = STRICT) -> dict[str, Any]:
    """A valid event as the API keeps it: `custom_event_name` and currencies normalized, user
    lists reduced to their first three valid unique values, ignored values removed.

    Call it only on an event `validate_event` accepted with the same `rules`.
    """
    normalized = dict(event)
    if "custom_event_name" in normalized:
        if normalized["type"] == "custom":
            normalized["custom_event_name"] = normalized["custom_event_name"].lower()
        else:  # accepted only because the rules ignore it
            del normalized["custom_event_name"]
    if rules.oppcref == "ignore":
        normalized.pop("oppcref", None)
    data = dict(normalized["data"])
    if "currency" in data:
        data["currency"] = data["currency"].upper()
    if "contents" in data:
        data["contents"] = [
            {**item, "currency": item["currency"].upper()} if "currency" in item else item
            for item in data["contents"]
        ]
    normalized["data"] = data
    if "user" in normalized:
        normalized["user"] = _normalize_user(normalized["user"], rules)
    return normalized


def _normalize_user(user: Mapping[str, Any], rules: Rules) -> dict[str, Any]:
    normalized: dict[str, Any] = {}
    for field, value in user.items():
        if field in USER_LIST_FIELDS:
            kept = _first_valid_unique(field, value, rules)
            if kept:
                normalized[field] = kept
        elif field == "android_advertising_id" and value == _ZERO_UUID:
            continue  # [L] an all-zero advertising id is ignored
        elif field in USER_SCALAR_FIELDS:
            normalized[field] = value
        elif field in LEGACY_USER_FIELDS and rules.accept_legacy_user_fields:
            kept = _first_valid_unique(field, [value], rules)
            if kept:
                normalized[field] = kept[0]
    return normalized


def _first_valid_unique(field: str, values: list[str], rules: Rules) -> list[str]:
    kind = _USER_LIST_KIND.get(field) or _USER_LEGACY_KIND[field]
    kept: list[str] = []
    for value in values:
        if not _user_value_ok(kind, value, rules):
            continue
        if kind == "text":
            usable = value.strip().lower()[:USER_TEXT_MAX_CHARS]
        elif kind == "postal_code":
            usable = value.strip()
        elif kind == "country":
            usable = value.upper()
        else:
            usable = value
        if usable and usable not in kept:
            kept.append(usable)
            if len(kept) == USER_LIST_VALUES_USED:
                break
    return kept
