"""`GET /_sandbox/`: the stored and rejected events per pixel, each rejection with its error
and failing path (the page itself is tested in a browser in tests/integration)."""

from __future__ import annotations

import aiohttp

from tests.consumer.sandbox.conftest import StartSandbox
from tests.consumer.sandbox.sandbox_helpers import (
    FakeClock,
    events,
    get,
    post_events,
    realistic_event,
)


async def test_sandbox_page_lists_stored_and_rejected_events(
    start_sandbox: StartSandbox, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sandbox = await start_sandbox(recent_events_per_pixel=3)
    assert (await post_events(session, sandbox.url, events(4, "ok"))).status == 200
    clock.now_ms += 1000
    bad = realistic_event("bad-1", data={"type": "contents", "amount": 5, "currency": "ZZZ"})
    rejected = await post_events(session, sandbox.url, [realistic_event("fine"), bad])
    assert rejected.status == 400

    page = await get(session, f"{sandbox.url}/_sandbox/")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "/_sandbox/events.json" in page.body
    assert "<script src" not in page.body  # self-contained
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]

    shown = (await get(session, f"{sandbox.url}/_sandbox/events.json")).body
    assert shown["counts"] == {"stored": 4, "rejected": 1}
    newest = shown["events"][0]
    assert newest["outcome"] == "rejected"
    assert (newest["id"], newest["pixel"], newest["status"]) == ("bad-1", "pixel-1", 400)
    assert newest["field"] == "data.currency"
    assert "events[1].data.currency" in newest["message"]
    assert newest["payload"]["user"]["ip_address"] == "***"
    stored = [event["id"] for event in shown["events"] if event["outcome"] == "stored"]
    assert stored == ["ok3", "ok2", "ok1"]  # the last `recent_events_per_pixel`, newest first
