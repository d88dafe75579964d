"""Fixed tables: the CAPI event types and their data shapes, CA event names, action sources."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from transforms.capi_rules import EVENT_TYPES, SHAPE_BY_TYPE

# The API's tables live in `capi_rules` (one source of truth with the sandbox).
DATA_SHAPES: Final = SHAPE_BY_TYPE
CAPI_EVENT_TYPES: Final = EVENT_TYPES

# Shapes that may carry `data.contents` and `data.plan_id`.
SHAPES_WITH_CONTENTS: Final = frozenset({"contents", "plan_enrollment", "custom"})
SHAPES_WITH_PLAN_ID: Final = frozenset({"plan_enrollment", "custom"})

# CA `event_name` → CAPI `type` before configuration; every CAPI type also maps to itself.
DEFAULT_EVENT_MAPPING: Final = MappingProxyType(
    {
        "purchase": "order_created",
        "begin_checkout": "checkout_started",
        "generate_lead": "lead_created",
        "page_view": "page_viewed",
        "sign_up": "registration_completed",
        "add_to_cart": "items_added",
        "view_item": "contents_viewed",
        **{event_type: event_type for event_type in DATA_SHAPES},
    }
)

# CA purchase `type` values and OpenAI's own names → CAPI `action_source` (keys lower case).
# A plain dict (private, never changed): compiled, a proxy's `get` is a generic method call.
_ACTION_SOURCE_SYNONYMS: Final[dict[str, str]] = {
    "web": "web",
    "online": "web",
    "mobile_app": "mobile_app",
    "app": "mobile_app",
    "mobile": "mobile_app",
    "offline": "offline",
    "physical_store": "physical_store",
    "store": "physical_store",
    "in_store": "physical_store",
    "phone_call": "phone_call",
    "call": "phone_call",
    "phone": "phone_call",
    "email": "email",
    "other": "other",
}


def translate_action_source(value: object) -> str | None:
    """The CAPI action source a CA value stands for (case-insensitive, trimmed), else None."""
    if isinstance(value, str):
        # Most values are spelled as the keys are: looked up as they come first.
        return _ACTION_SOURCE_SYNONYMS.get(value) or _ACTION_SOURCE_SYNONYMS.get(
            value.strip().lower()
        )
    return None
