"""Deterministic, realistic Commanders Act events for the demo, the integration tests and `bench/`.

`generate_events(n, seed, now_ms)` always returns the same list for the same arguments. Identities
are synthetic (example.com addresses, documentation IP ranges, 555 phone numbers), so nothing here
is anyone's personal data. With `invalid_ratio`, that share of the events is built to come out of
the mapping as an error (bad currency, expired timestamp, missing event id) or as a skip (an
event name with no mapping).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

Event = dict[str, Any]

_FIRST_NAMES = ("Ada", "Grace", "Alan", "Hedy", "Linus", "Margaret", "Ken", "Barbara", "Dennis")
_LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Lamarr", "Torvalds", "Hamilton", "Thompson")
# (city, state, zipcode, country as CA sends it: alpha-3 or alpha-2, phone prefix, currency)
_PLACES = (
    ("San Francisco", "CA", "94107", "USA", "+1415555", "USD"),
    ("Boston", "MA", "02108", "US", "+1617555", "USD"),
    ("Paris", "IDF", "75002", "FRA", "+336", "EUR"),
    ("Lyon", "ARA", "69002", "FR", "+337", "EUR"),
    ("Berlin", "BE", "10115", "DEU", "+4930", "EUR"),
    ("London", "LND", "SW1A 1AA", "GB", "+44207", "GBP"),
    ("Tokyo", "13", "100-0001", "JPN", "+813", "JPY"),
    ("Kuwait City", "KU", "13001", "KW", "+9652", "KWD"),
)
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
)
_PRODUCTS = (
    ("Trail running shoes", "Footwear", "Running", "Trail", "Northpeak", 129.9),
    ("Merino base layer", "Apparel", "Tops", "Base layers", "Woolly", 64.5),
    ("Insulated bottle 750 ml", "Accessories", "Hydration", "Bottles", "Aquarius", 24.99),
    ("Headlamp 400 lm", "Accessories", "Lighting", "Headlamps", "Lumen", 39.0),
    ("Rain shell jacket", "Apparel", "Jackets", "Shells", "Northpeak", 189.0),
    ("Trekking poles", "Equipment", "Hiking", "Poles", "Stride", 79.95),
    ("Camp stove", "Equipment", "Cooking", "Stoves", "Ember", 54.25),
)
_SHOP = "https://shop.example.com"
_PAGES = (
    ("/", "Home", "home"),
    ("/c/footwear", "Footwear", "product_list"),
    ("/p/trail-running-shoes", "Trail running shoes", "product"),
    ("/blog/packing-list", "The packing list", "content"),
    ("/cart", "Your cart", "cart"),
)
_REFERRERS = ("https://www.example.org/search?q=trail+shoes", "https://news.example.net/", "")
_CUSTOM_NAMES = ("quiz_completed", "store_locator_used", "newsletter_opened", "size_guide_viewed")
_CURRENCY_EXPONENT = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}
_FX = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 157.0, "KWD": 0.307}

# Event mix (weights) of a busy shop; purchases carry 3 items and a full identity.
_MIX: tuple[tuple[str, int], ...] = (
    ("page_view", 30),
    ("view_item", 15),
    ("add_to_cart", 12),
    ("purchase", 20),
    ("begin_checkout", 8),
    ("generate_lead", 5),
    ("sign_up", 5),
    ("custom", 5),
)
INVALID_KINDS = ("bad_currency", "expired_timestamp", "missing_event_id", "unmapped_event")


def generate_events(n: int, seed: int, now_ms: int, invalid_ratio: float = 0.0) -> list[Event]:
    """`n` CA events with unique `context.event_id`s and timestamps in the hour before `now_ms`."""
    if not 0.0 <= invalid_ratio <= 1.0:
        raise ValueError("invalid_ratio must be between 0 and 1")
    rng = random.Random(seed)
    names = [name for name, _ in _MIX]
    weights = [weight for _, weight in _MIX]
    events: list[Event] = []
    for _ in range(n):
        event = _BUILDERS[rng.choices(names, weights)[0]](rng, now_ms)
        if rng.random() < 0.05:
            # A custom property the Avro schema does not name (it travels in extra_properties).
            event["ab_test"] = {"experiment": "checkout_button", "variant": rng.choice("AB")}
        if invalid_ratio and rng.random() < invalid_ratio:
            _spoil(event, rng.choice(INVALID_KINDS), now_ms)
        events.append(event)
    return events


def _event_id(rng: random.Random) -> str:
    # Mobile SDKs send UUID v4s; 122 random bits make a repeat practically impossible.
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _timestamp(rng: random.Random, now_ms: int) -> int | str:
    """One of CA's three forms: epoch ms, numeric string, ISO-8601 with an offset."""
    ms = now_ms - rng.randrange(1_000, HOUR_MS)
    form = rng.random()
    if form < 0.7:
        return ms
    if form < 0.9:
        return str(ms)
    offset = timezone(timedelta(hours=rng.choice((-5, 0, 1, 2, 9))))
    return datetime.fromtimestamp(ms / 1000, tz=offset).isoformat(timespec="milliseconds")


def _context(rng: random.Random, now_ms: int, path: str, title: str) -> Event:
    cookie = f"_ga=GA1.2.{rng.getrandbits(31)}.{now_ms // 1000}"
    cookie += f"; _fbp=fb.1.{now_ms}.{rng.getrandbits(31)}"
    if rng.random() < 0.6:
        cookie += f"; __oppref=opp_{rng.getrandbits(64):016x}"
    context: Event = {
        "event_id": _event_id(rng),
        "event_timestamp": _timestamp(rng, now_ms),
        # The web SDK adds these to every event.
        "generatorVersion": "10.4",
        "containerVersion": "3.1",
        "page": {
            "url": f"{_SHOP}{path}?utm_source=newsletter&utm_medium=email",
            "title": title,
            "referrer": rng.choice(_REFERRERS),
            "lang": "en-US",
            "viewport": {"width": rng.choice((390, 1280, 1920)), "height": 800},
        },
        "device": {
            "ip": _ip(rng),
            "user_agent": rng.choice(_USER_AGENTS),
            "cookie": cookie,
            "lang": "en-US",
            "timezone": "Europe/Paris",
        },
    }
    return context


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return f"{rng.choice(('203.0.113', '198.51.100', '192.0.2'))}.{rng.randrange(1, 255)}"
    return f"2001:db8::{rng.getrandbits(16):x}"


def _place(rng: random.Random) -> tuple[str, str, str, str, str, str]:
    return rng.choice(_PLACES)


def _user(rng: random.Random, place: tuple[str, ...], full: bool) -> Event:
    consent = sorted(rng.sample(("1", "2", "3", "4"), rng.randrange(1, 5)))
    user: Event = {
        "consistent_anonymous_id": f"{rng.getrandbits(64):016x}",
        "consent_categories": consent,
    }
    if not full:
        return user
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    city, state, zipcode, country, phone_prefix, _ = place
    digits = 11 - len(phone_prefix) + 1
    user.update(
        {
            "id": f"cust_{rng.randrange(10**6, 10**7)}",
            "email": f" {first}.{last}{rng.randrange(100)}@Example.com ",
            "phone": phone_prefix + "".join(str(rng.randrange(10)) for _ in range(digits)),
            "firstname": first,
            "lastname": last,
            "city": city,
            "state": state,
            "zipcode": zipcode,
            "country": country,
        }
    )
    return user


def _money(amount: float, currency: str) -> float:
    return round(amount * _FX[currency], _CURRENCY_EXPONENT[currency])


def _items(rng: random.Random, count: int, currency: str) -> list[Event]:
    items = []
    for index in rng.sample(range(len(_PRODUCTS)), count):
        name, cat1, cat2, cat3, brand, price = _PRODUCTS[index]
        unit = _money(price, currency)
        quantity = rng.choice((1, 1, 1, 2, 3))
        item: Event = {
            "id": f"sku_{index:05d}",
            "quantity": quantity,
            "price": unit,
            "value": round(unit * quantity, _CURRENCY_EXPONENT[currency]),
            "product": {
                "id": f"prod_{index:04d}",
                "name": name,
                "price": unit,
                "currency": currency,
                "category_1": cat1,
                "category_2": cat2,
                "category_3": cat3,
                "brand": brand,
            },
        }
        if rng.random() < 0.1:
            item["variant"] = rng.choice(("blue / 42", "black / M", "red / L"))
        items.append(item)
    return items


def _commerce(
    rng: random.Random, now_ms: int, event_name: str, item_count: int, full_identity: bool
) -> Event:
    place = _place(rng)
    currency = place[5]
    items = _items(rng, item_count, currency)
    total = round(
        sum(item["price"] * item["quantity"] for item in items), _CURRENCY_EXPONENT[currency]
    )
    path, title = (
        ("/checkout/confirmation", "Thank you")
        if event_name == "purchase"
        else (
            "/p/trail-running-shoes",
            "Trail running shoes",
        )
    )
    event: Event = {
        "event_name": event_name,
        "context": _context(rng, now_ms, path, title),
        "user": _user(rng, place, full_identity),
        "value": total,
        "currency": currency,
        "items": items,
    }
    return event


def _purchase(rng: random.Random, now_ms: int) -> Event:
    event = _commerce(rng, now_ms, "purchase", 3, full_identity=True)
    device = event["context"]["device"]
    if "__oppref" not in device["cookie"]:  # a purchase follows an ad click
        device["cookie"] += f"; __oppref=opp_{rng.getrandbits(64):016x}"
    exponent = _CURRENCY_EXPONENT[event["currency"]]
    event.update(
        {
            "id": f"ORD-{rng.randrange(10**7, 10**8)}",
            "type": "online",
            "revenue": round(event["value"] / 1.2, exponent),
            "payment_method": "card",
            "status": "in_progress",
        }
    )
    return event


def _begin_checkout(rng: random.Random, now_ms: int) -> Event:
    event = _commerce(rng, now_ms, "begin_checkout", rng.randrange(1, 4), full_identity=True)
    event["revenue"] = round(event["value"] / 1.2, _CURRENCY_EXPONENT[event["currency"]])
    return event


def _add_to_cart(rng: random.Random, now_ms: int) -> Event:
    return _commerce(rng, now_ms, "add_to_cart", 1, full_identity=rng.random() < 0.5)


def _view_item(rng: random.Random, now_ms: int) -> Event:
    return _commerce(rng, now_ms, "view_item", 1, full_identity=False)


def _page_view(rng: random.Random, now_ms: int) -> Event:
    path, title, page_type = rng.choice(_PAGES)
    return {
        "event_name": "page_view",
        "page_type": page_type,
        "page_name": title.lower().replace(" ", "_"),
        "context": _context(rng, now_ms, path, title),
        "user": _user(rng, _place(rng), full=rng.random() < 0.3),
    }


def _generate_lead(rng: random.Random, now_ms: int) -> Event:
    place = _place(rng)
    return {
        "event_name": "generate_lead",
        "id": f"LEAD-{rng.randrange(10**6, 10**7)}",
        "value": _money(50.0, place[5]),
        "currency": place[5],
        "context": _context(rng, now_ms, "/contact", "Contact us"),
        "user": _user(rng, place, full=True),
    }


def _sign_up(rng: random.Random, now_ms: int) -> Event:
    return {
        "event_name": "sign_up",
        "method": rng.choice(("email", "google", "apple")),
        "context": _context(rng, now_ms, "/account/welcome", "Welcome"),
        "user": _user(rng, _place(rng), full=True),
    }


def _custom(rng: random.Random, now_ms: int) -> Event:
    return {
        "event_name": "custom",
        "partners": {"openai": {"custom_event_name": rng.choice(_CUSTOM_NAMES)}},
        "context": _context(rng, now_ms, "/help/size-guide", "Size guide"),
        "user": _user(rng, _place(rng), full=rng.random() < 0.5),
    }


_BUILDERS: dict[str, Callable[[random.Random, int], Event]] = {
    "page_view": _page_view,
    "view_item": _view_item,
    "add_to_cart": _add_to_cart,
    "purchase": _purchase,
    "begin_checkout": _begin_checkout,
    "generate_lead": _generate_lead,
    "sign_up": _sign_up,
    "custom": _custom,
}


def _spoil(event: Event, kind: str, now_ms: int) -> None:
    """Make `event` one the mapping rejects (or skips), in the way named by `kind`."""
    if kind == "bad_currency":
        event["currency"] = "ZZZ"
        event.setdefault("value", 10.0)
    elif kind == "expired_timestamp":
        event["context"]["event_timestamp"] = now_ms - 8 * DAY_MS
    elif kind == "missing_event_id":
        del event["context"]["event_id"]
    else:
        event["event_name"] = "scroll_depth"
