"""Shared by the sandbox tests: a realistic valid event, a settable clock, a small HTTP client."""

from __future__ import annotations

import copy
import io
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

# mapping.md §8: the worked example's `--now`.
NOW_MS = 1_773_892_900_000
DEFAULT_KEY = "test-key"

_MAPPING_EXAMPLE_OUTPUT: dict[str, Any] = {
    "id": "order_12345",
    "type": "order_created",
    "timestamp_ms": 1_773_892_800_000,
    "oppref": "oppref_abc",
    "action_source": "web",
    "source_url": "https://shop.example.com/checkout/confirmation",
    "user": {
        "emails_sha256": ["b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"],
        "phone_numbers_sha256": [
            "758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0"
        ],
        "external_ids_sha256": ["18f69bcd2f9cc9c38195e722b2a5590429840ea5090971d2256e026926e55fa1"],
        "countries": ["US"],
        "cities": ["san francisco"],
        "postal_codes": ["94107"],
        "ip_address": "203.0.113.1",
        "user_agent": "Mozilla/5.0",
    },
    "data": {
        "type": "contents",
        "amount": 2599,
        "currency": "USD",
        "contents": [
            {
                "id": "sku_123",
                "name": "Starter bundle",
                "content_type": "product",
                "quantity": 1,
                "amount": 2599,
            }
        ],
    },
}


def realistic_event(event_id: str = "order_12345", **changes: Any) -> dict[str, Any]:
    """mapping.md §8's output (valid at `NOW_MS`), with a new id and top-level changes."""
    event = copy.deepcopy(_MAPPING_EXAMPLE_OUTPUT)
    event["id"] = event_id
    event.update(changes)
    return event


def events(count: int, prefix: str = "e") -> list[dict[str, Any]]:
    return [realistic_event(f"{prefix}{index}") for index in range(count)]


def fresh_events(count: int, prefix: str = "e") -> list[dict[str, Any]]:
    """Events valid on the wall clock (for a sandbox that runs on it)."""
    now_ms = time.time_ns() // 1_000_000
    return [realistic_event(f"{prefix}{index}", timestamp_ms=now_ms) for index in range(count)]


class FakeClock:
    """The sandbox clock, set by the test."""

    def __init__(self, now_ms: int = NOW_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


async def post_events(
    session: aiohttp.ClientSession,
    base_url: str,
    batch: list[Any] | None = None,
    *,
    pid: str | None = "pixel-1",
    key: str | None = DEFAULT_KEY,
    body: Any = None,
    **request_fields: Any,
) -> Answer:
    """POST /v1/events; `body` replaces the whole `{"events": batch, **request_fields}` body."""
    url = f"{base_url}/v1/events" + (f"?pid={pid}" if pid is not None else "")
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    payload = {"events": batch or [], **request_fields} if body is None else body
    # A file object: aiohttp warns that large raw bytes would block the loop.
    data = io.BytesIO(orjson.dumps(payload))
    async with session.post(url, data=data, headers=headers) as response:
        return await answer(response)


async def get(session: aiohttp.ClientSession, url: str) -> Answer:
    async with session.get(url) as response:
        return await answer(response)


async def answer(response: aiohttp.ClientResponse) -> Answer:
    text = await response.text()
    body: Any = text
    if response.content_type == "application/json":
        body = await response.json()
    return Answer(response.status, body, dict(response.headers))
