"""Shared by the property tests: Hypothesis strategies for CA events (arbitrary JSON, CA-shaped
events with random values, "rich" events that mostly map), two compiled mappings, and the
well-formedness check of an outcome."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from transforms import Failed, Mapped, MappingSettings, Outcome, Skipped
from transforms.envelope import UNEXPECTED_INPUT
from transforms.event_mapping import DEFAULT_EVENT_MAPPING

NOW = 1_773_892_900_000
ERROR_CODES = {"invalid_json", "missing_field", "invalid_value", "timestamp_out_of_window"}
DEFAULT = MappingSettings().compile()
CONFIGURED_SETTINGS = MappingSettings.model_validate(
    {
        "event_mapping": {"signup_step": "custom", "purchase": "subscription_created"},
        "defaults": {"action_source": "offline"},
        "keep_url_query": True,
        "field_mapping": {"data.contents.X.amount": "items.X.price"},
    }
)
CONFIGURED = CONFIGURED_SETTINGS.compile()
PROFILE = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_well_formed(outcome: Outcome) -> None:
    assert isinstance(outcome, Mapped | Skipped | Failed)
    if isinstance(outcome, Failed):
        assert outcome.code in ERROR_CODES
        assert outcome.message != UNEXPECTED_INPUT, "an exception escaped a mapping step"
        assert outcome.field or outcome.code == "invalid_json"
    if isinstance(outcome, Skipped):
        assert outcome.reason in {"unmapped_event", "no_consent"}


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly (9 in 10) a plausible field value; else a value of another JSON type, or null."""
    return st.integers(0, 9).flatmap(lambda draw: json_scalars if draw == 0 else strategy)


event_names = st.sampled_from(sorted(set(DEFAULT_EVENT_MAPPING) | {"refund", "signup_step"}))
timestamps = st.one_of(
    st.integers(min_value=NOW - 8 * 86_400_000, max_value=NOW + 900_000),
    st.integers(min_value=NOW - 86_400_000, max_value=NOW).map(str),
    st.sampled_from(
        ["2026-03-19T04:00:00Z", "2026-03-19T06:00:00.123+02:00", "2026-03-19T04:00:00", " 1 "]
    ),
)
urls = st.one_of(
    st.sampled_from(
        [
            "https://shop.example.com/a?b=c#d",
            "http://u:p@x.example:80/",
            "https://[::1]/p",
            "ftp://x",
            "https://",
            "HTTPS://Q.example/ü",
        ]
    ),
    st.text(max_size=30).map(lambda tail: "https://h.example/" + tail),
    st.text(max_size=30).map(lambda host: "https://" + host),
)
valid_money = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False).map(str),
)
money = valid_money | st.sampled_from(["1e3", "", "abc", "1,0"])
currencies = st.sampled_from(["usd", "JPY", " kwd ", "BHD", "CLF", "XAU", "EUR", "US$", ""])
texts = st.text(max_size=24)
items = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "id": _maybe(texts | st.integers()),
                "quantity": _maybe(st.integers(-5, 10) | st.floats(0, 5) | st.just("2")),
                "price": _maybe(money),
                "currency": _maybe(currencies),
                "content_type": _maybe(texts),
                "product": _maybe(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "name": _maybe(texts),
                            "price": _maybe(money),
                            "currency": _maybe(currencies),
                        },
                    )
                ),
            },
        ),
        json_scalars,
    ),
    max_size=4,
)
event_ids = st.text("abcdefXYZ0123456789-_ ", min_size=1, max_size=12) | st.integers(0, 10**12)
ca_events = st.fixed_dictionaries(
    {
        "event_name": _maybe(event_names),
        "context": st.fixed_dictionaries(
            {
                "event_id": _maybe(event_ids),
                "event_timestamp": _maybe(timestamps),
            },
            optional={
                "page": st.fixed_dictionaries({"url": _maybe(urls)}),
                "device": st.fixed_dictionaries(
                    {},
                    optional={
                        "ip": _maybe(st.ip_addresses().map(str) | texts),
                        "user_agent": _maybe(texts),
                        "cookie": _maybe(
                            st.tuples(texts, texts).map(
                                lambda pair: f"a=1; __oppref={pair[0]}; __obref={pair[1]}"
                            )
                        ),
                    },
                ),
            },
        ),
    },
    optional={
        "type": _maybe(st.sampled_from(["online", "offline", "app", "web", "product", "CALL"])),
        "url": _maybe(urls),
        "value": _maybe(money),
        "currency": _maybe(currencies),
        "content_type": _maybe(texts),
        "items": _maybe(items),
        "user": st.fixed_dictionaries(
            {},
            optional={
                "email": _maybe(st.emails() | texts),
                "email_sha256": _maybe(st.text("0123456789abcdefABCDEF", min_size=63, max_size=65)),
                "phone": _maybe(st.from_regex(r"\+?[0-9 ().-]{0,20}", fullmatch=True) | texts),
                "id": _maybe(texts | st.integers()),
                "firstname": _maybe(texts),
                "lastname": _maybe(texts),
                "city": _maybe(texts),
                "state": _maybe(texts),
                "zipcode": _maybe(texts),
                "country": _maybe(st.sampled_from(["US", "fra", "XX", "de", "\u00df"]) | texts),
                "consent_categories": _maybe(st.lists(st.sampled_from(["1", "2", 1, 3]))),
            },
        ),
        "partners": st.fixed_dictionaries(
            {
                "openai": st.fixed_dictionaries(
                    {},
                    optional={
                        "custom_event_name": _maybe(texts),
                        "oppref": _maybe(texts),
                        "obref": _maybe(texts),
                        "action_source": _maybe(st.sampled_from(["web", "mobile_app", "x"])),
                        "opt_out": _maybe(st.sampled_from([True, False, "true", "no"])),
                        "plan_id": _maybe(texts | st.integers()),
                    },
                )
            }
        ),
    },
)

# Events that mostly map, with contents and user values random where the contract allows.
rich_events = st.fixed_dictionaries(
    {
        "event_name": st.sampled_from(["purchase", "add_to_cart", "trial_started", "custom"]),
        "currency": st.sampled_from(["usd", "JPY", "KWD", "CLF", "EUR"]),
        "value": valid_money,
        "context": st.fixed_dictionaries(
            {
                "event_id": event_ids,
                "event_timestamp": st.integers(NOW - 86_400_000, NOW),
                "page": st.fixed_dictionaries({"url": urls}),
                "device": st.fixed_dictionaries(
                    {"ip": st.ip_addresses().map(str) | texts, "user_agent": texts}
                ),
            }
        ),
        "partners": st.fixed_dictionaries(
            {
                "openai": st.fixed_dictionaries(
                    {
                        "custom_event_name": st.from_regex(r"[A-Za-z0-9_ -]{1,70}", fullmatch=True),
                        "plan_id": texts | st.integers(),
                        "oppref": texts,
                        "obref": texts,
                    }
                )
            }
        ),
        "items": st.lists(
            st.fixed_dictionaries(
                {"quantity": st.integers(-3, 10), "price": valid_money},
                optional={
                    "id": texts | st.integers(),
                    "content_type": texts,
                    "currency": st.sampled_from(["usd", "JPY", "KWD", "CLF", "EUR"]),
                    "product": st.fixed_dictionaries({"name": texts}),
                },
            ),
            min_size=1,
            max_size=4,
        ),
        "user": st.fixed_dictionaries(
            {
                "email": st.emails() | texts,
                "phone": st.from_regex(r"\+?[0-9 ().-]{0,20}", fullmatch=True),
                "id": texts | st.integers(),
                "firstname": texts,
                "lastname": texts,
                "city": texts,
                "state": texts,
                "zipcode": texts | st.from_regex(r"[A-Z0-9 -]{1,10}", fullmatch=True),
                "country": st.sampled_from(["US", "fra", "XX", "de"]) | texts,
            }
        ),
    }
)

# --- properties ------------------------------------------------------------------------------
