"""`map_event`: one CA event → one CAPI event, a skip, or an error (never an exception).

Steps run in the order that decides which problem is reported when a line has several:
event name → event mapping → consent → id → timestamp → custom_event_name → oppref →
source_url/action_source → opt_out → user → data (amount, currency, plan_id, items by index).
Messages describe the problem and never repeat an input value.
"""

from __future__ import annotations

import re
from typing import Any, Final

from transforms.capi_rules import APP_EVENT_TYPES
from transforms.compiled import CompiledMapping
from transforms.event_mapping import (
    CAPI_EVENT_TYPES,
    DATA_SHAPES,
    SHAPES_WITH_CONTENTS,
    SHAPES_WITH_PLAN_ID,
)
from transforms.identity import non_blank
from transforms.money import (
    currency_exponent,
    parse_currency,
    to_minor_units,
    to_whole_number,
)
from transforms.outcomes import OPPREF_BIT, Failed, Mapped, Outcome, Skipped
from transforms.paths import pick
from transforms.timestamps import WINDOW_FUTURE_MS, WINDOW_PAST_MS, parse_timestamp_ms

# A plain dict copy (never changed): compiled, a proxy's item is a generic lookup.
_SHAPES: Final[dict[str, str]] = dict(DATA_SHAPES)
_CUSTOM_EVENT_NAME: Final = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?")
# 2**62 - 1: compiled, comparisons within this bound need no big-integer arithmetic (beyond it,
# `to_whole_number` checks the 64-bit range).
_SMALL_INT: Final = 4611686018427387903
UNEXPECTED_INPUT: Final = "the event could not be mapped (unexpected input)"


def map_event(event: object, compiled: CompiledMapping, now_ms: int) -> Outcome:
    """Map one decoded CA event at time `now_ms` (epoch ms). Pure; never raises."""
    try:
        if not isinstance(event, dict):
            return Failed("invalid_json", "", "the event is not a JSON object")
        return _map_values(compiled.event_reader.read(event), compiled, now_ms)
    except Exception:  # a promise to every caller: an outcome for any input whatsoever
        return Failed("invalid_value", "", UNEXPECTED_INPUT)


def map_values(values: tuple[Any, ...], compiled: CompiledMapping, now_ms: int) -> Outcome:
    """`map_event` of the event whose values at `compiled.event_reader`'s paths are `values`
    (in its `index` order; more may follow). Its items may also be given as tuples of their
    values at `compiled.item_reader`'s paths. This is what a decoder that reads only those
    paths produces (consumer/avro/decoding.py), saving the event's tree. Pure; never raises."""
    try:
        return _map_values(values, compiled, now_ms)
    except Exception:
        return Failed("invalid_value", "", UNEXPECTED_INPUT)


def _map_values(values: tuple[Any, ...], compiled: CompiledMapping, now_ms: int) -> Outcome:
    event_name = values[compiled.event_name]
    if not isinstance(event_name, str):
        return Failed("missing_field", "type", "event_name is missing or not a string")
    event_type = compiled.event_type_of.get(event_name)
    if event_type is None:
        return Skipped("unmapped_event", event_name)
    if compiled.required_categories and not _has_consent(
        values[compiled.consent], compiled.required_categories
    ):
        return Skipped("no_consent", event_name)

    raw_id = values[compiled.id]
    if isinstance(raw_id, str):
        event_id = raw_id.strip()
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        event_id = str(raw_id)
    elif raw_id is None:
        event_id = ""
    else:
        return Failed("invalid_value", "id", "the event id must be a string or an integer")
    if not event_id:
        return Failed("missing_field", "id", "the event id is missing or empty")

    raw_timestamp = values[compiled.timestamp]
    if raw_timestamp is None:
        timestamp_ms = now_ms
    else:
        # The usual timestamp, epoch ms as a plain int, without the call.
        parsed: int | None
        if type(raw_timestamp) is int and raw_timestamp >= 0:
            parsed = raw_timestamp
        else:
            parsed = parse_timestamp_ms(raw_timestamp)
        if parsed is None:
            return Failed(
                "invalid_value",
                "timestamp_ms",
                "not epoch milliseconds (integer or digits) nor ISO-8601 with an offset",
            )
        if not now_ms - WINDOW_PAST_MS <= parsed <= now_ms + WINDOW_FUTURE_MS:
            return Failed(
                "timestamp_out_of_window",
                "timestamp_ms",
                f"{parsed} is outside the accepted window "
                f"[{now_ms - WINDOW_PAST_MS}, {now_ms + WINDOW_FUTURE_MS}] "
                "(7 days back, 10 minutes ahead)",
            )
        timestamp_ms = parsed

    capi: dict[str, Any] = {"id": event_id, "type": event_type, "timestamp_ms": timestamp_ms}

    if event_type == "custom":
        name = pick(values, compiled.custom_event_name)
        if not isinstance(name, str):
            return Failed("missing_field", "custom_event_name", "a custom event needs a name")
        name = name.lower()
        if _CUSTOM_EVENT_NAME.fullmatch(name) is None:
            return Failed(
                "invalid_value",
                "custom_event_name",
                "must be 1-64 of a-z 0-9 _ -, starting and ending with a letter or digit",
            )
        if name in CAPI_EVENT_TYPES:
            return Failed(
                "invalid_value", "custom_event_name", "must not be one of the 13 event type names"
            )
        capi["custom_event_name"] = name

    # `compiled.read_envelope` is `native.read_envelope` when compiled, but called through
    # the attribute it is a generic call: the native method is called directly.
    native = compiled.native
    if native is not None:
        oppref, source_url, action_source, opt_out = native.read_envelope(values)
    else:
        oppref, source_url, action_source, opt_out = compiled.read_envelope(values)
    if oppref is not None:
        capi["oppref"] = oppref

    if event_type in APP_EVENT_TYPES:
        # The API requires mobile_app on app events; the configured default does not apply.
        if action_source is None:
            action_source = "mobile_app"
        elif action_source != "mobile_app":
            return Failed(
                "invalid_value", "action_source", f"{event_type} events require mobile_app"
            )
    else:
        if action_source is None:
            action_source = compiled.default_action_source
            if action_source is None and source_url is not None:
                action_source = "web"
        if action_source == "web" and source_url is None:
            return Failed(
                "missing_field", "source_url", "web events need an http(s) URL with a host"
            )
    if action_source is not None:
        capi["action_source"] = action_source
    if source_url is not None:
        capi["source_url"] = source_url

    if opt_out is not None:
        capi["opt_out"] = opt_out

    user, shape = compiled.read_user(values) if native is None else native.read_user(values)
    if user:
        capi["user"] = user
    if oppref is not None:
        shape |= OPPREF_BIT

    data = _data(values, compiled, _SHAPES[event_type])
    if isinstance(data, Failed):
        return data
    capi["data"] = data
    return Mapped(capi, shape)


def _has_consent(granted: object, required: frozenset[str]) -> bool:
    if not isinstance(granted, list):
        return False
    # Categories compare as strings: 1 matches "1".
    names = {
        str(category)
        for category in granted
        if isinstance(category, str | int) and not isinstance(category, bool)
    }
    return required <= names


def _data(
    values: tuple[Any, ...], compiled: CompiledMapping, shape: str
) -> dict[str, Any] | Failed:
    data: dict[str, Any] = {"type": shape}
    money = _money(values[compiled.amount], values[compiled.currency], None, None, None)
    if isinstance(money, Failed):
        return money
    amount, currency = money
    if amount is not None:
        data["amount"] = amount
    if currency is not None:
        data["currency"] = currency

    if shape in SHAPES_WITH_PLAN_ID:
        plan_id = pick(values, compiled.plan_id)
        if plan_id is not None:
            data["plan_id"] = plan_id

    if shape in SHAPES_WITH_CONTENTS:
        items = values[compiled.items]
        if isinstance(items, list):
            event_content_type = "product"
            if compiled.event_content_type >= 0:
                event_content_type = non_blank(values[compiled.event_content_type]) or "product"
            exponent = None if currency is None else currency_exponent(currency)
            contents = []
            read_item = compiled.item_reader.read
            select_item = compiled.item_reader.select
            tree = compiled.item_reader.tree
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    fields = read_item(item)
                elif type(item) is tuple:  # read by a projecting decoder (`map_values`)
                    fields = select_item(item) if tree is None else tree.select(item)
                else:  # a null or non-object entry: nothing to map; indexes stay those of `items`
                    continue
                content = _content(fields, index, event_content_type, currency, exponent)
                if isinstance(content, Failed):
                    return content
                contents.append(content)
            if contents:
                data["contents"] = contents
    return data


def _content(
    fields: tuple[Any, ...],
    index: int,
    default_content_type: str,
    event_currency: str | None,
    event_exponent: int | None,
) -> dict[str, Any] | Failed:
    """One item, from the fields `CompiledMapping.item_reader` read of it."""
    item_id, name, content_type, raw_quantity, raw_amount, raw_currency = fields
    # Plain strings first, without a call: they are what producers send (same as `non_blank`).
    content_id: str | None
    if type(item_id) is str:
        content_id = item_id.strip() or None
    elif isinstance(item_id, int) and not isinstance(item_id, bool):
        content_id = str(item_id)
    else:
        content_id = non_blank(item_id)
    content_name = (name.strip() or None) if type(name) is str else non_blank(name)
    if type(content_type) is not str or not (content_type := content_type.strip()):
        content_type = non_blank(content_type) or default_content_type
    quantity: int | None = None
    if raw_quantity is not None:
        # The usual quantity, a plain int in range, without the call.
        if type(raw_quantity) is int and -_SMALL_INT <= raw_quantity <= _SMALL_INT:
            quantity = raw_quantity
        else:
            quantity = to_whole_number(raw_quantity)
        if quantity is None:
            return Failed(
                "invalid_value", f"data.contents[{index}].quantity", "must be a whole number"
            )
    # The usual item, priced in the event currency (implicitly or repeating it): what `_money`
    # returns then, without its general checks.
    if event_exponent is not None and (raw_currency is None or raw_currency == event_currency):
        amount = None if raw_amount is None else to_minor_units(raw_amount, event_exponent)
        if amount is not None or raw_amount is None:
            currency = None if raw_currency is None else event_currency
            return _content_object(
                content_id, content_name, content_type, quantity, amount, currency
            )
    money = _money(raw_amount, raw_currency, event_currency, event_exponent, index)
    if isinstance(money, Failed):
        return money
    return _content_object(content_id, content_name, content_type, quantity, *money)


def _content_object(
    content_id: str | None,
    name: str | None,
    content_type: str,
    quantity: int | None,
    amount: int | None,
    currency: str | None,
) -> dict[str, Any]:
    """The item's object, its fields in output order. The usual item has all six: one dict
    display, sized for them at once, instead of six insertions and a resize at the sixth."""
    if (
        content_id is not None
        and name is not None
        and quantity is not None
        and amount is not None
        and currency is not None
    ):
        return {
            "id": content_id,
            "name": name,
            "content_type": content_type,
            "quantity": quantity,
            "amount": amount,
            "currency": currency,
        }
    content: dict[str, Any] = {}
    if content_id is not None:
        content["id"] = content_id
    if name is not None:
        content["name"] = name
    content["content_type"] = content_type
    if quantity is not None:
        content["quantity"] = quantity
    if amount is not None:
        content["amount"] = amount
    if currency is not None:
        content["currency"] = currency
    return content


_NO_MONEY: Final = (None, None)


def _money_field(item_index: int | None, name: str) -> str:
    return f"data.{name}" if item_index is None else f"data.contents[{item_index}].{name}"


def _money(
    raw_amount: object,
    raw_currency: object,
    fallback_currency: str | None,
    fallback_exponent: int | None,
    item_index: int | None,
) -> tuple[int | None, str | None] | Failed:
    """Amount in minor units and own currency; checks in order: amount, currency, the pair.

    For the event (`item_index` None) or one item, whose amount is priced in
    `fallback_currency` (the event's, of exponent `fallback_exponent`) when the item has no
    currency of its own.
    """
    if raw_currency is None:  # the usual item: priced in the event currency
        if raw_amount is None:
            return _NO_MONEY
        if fallback_exponent is not None:
            amount = to_minor_units(raw_amount, fallback_exponent)
            if amount is not None:
                return amount, None
    if raw_currency is None:
        currency = None
    elif raw_currency == fallback_currency:  # an item repeating the event currency: parsed already
        currency = fallback_currency
    else:
        currency = parse_currency(raw_currency)
    if currency is None or currency is fallback_currency:
        pricing_currency, exponent = fallback_currency, fallback_exponent
    else:
        pricing_currency, exponent = currency, currency_exponent(currency)
    amount = None
    if raw_amount is not None:
        # With no usable exponent yet, still tell a number from garbage, in the contract's order.
        amount = to_minor_units(raw_amount, 0 if exponent is None else exponent)
        if amount is None:
            return Failed(
                "invalid_value",
                _money_field(item_index, "amount"),
                "must be a number of major units (digits, optional sign and decimals) "
                "that fits in 64 bits once in minor units",
            )
    if raw_currency is not None and currency is None:
        return Failed(
            "invalid_value",
            _money_field(item_index, "currency"),
            "not an active ISO 4217 currency code",
        )
    if currency is not None and currency is not fallback_currency and exponent is None:
        # Even without an amount: nothing can ever be priced in it (mapping.md, Money).
        return Failed(
            "invalid_value",
            _money_field(item_index, "currency"),
            "the currency has no minor unit, so no amount can be expressed in it",
        )
    if raw_amount is not None:
        if pricing_currency is None:
            return Failed(
                "missing_field", _money_field(item_index, "currency"), "an amount needs a currency"
            )
        if exponent is None:
            return Failed(
                "invalid_value",
                _money_field(item_index, "currency") if currency is not None else "data.currency",
                "the currency has no minor unit, so no amount can be expressed in it",
            )
    return amount, currency
