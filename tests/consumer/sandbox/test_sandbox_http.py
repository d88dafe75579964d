"""The sandbox over real HTTP on 127.0.0.1: transport and auth (§11.1), atomic batches, storage,
dedup and the test endpoints (§11.5)."""

from __future__ import annotations

import gzip
from typing import Any

import aiohttp
import orjson
import pytest

from consumer.sandbox.server import RunningSandbox
from tests.consumer.sandbox.conftest import StartSandbox
from tests.consumer.sandbox.sandbox_helpers import (
    NOW_MS,
    FakeClock,
    events,
    get,
    post_events,
    realistic_event,
)
from transforms.capi_rules import WINDOW_PAST_MS

Session = aiohttp.ClientSession


async def stored_ids(session: Session, sandbox: RunningSandbox, pid: str = "pixel-1") -> list[str]:
    answer = await get(session, f"{sandbox.url}/_sandbox/events?pid={pid}")
    assert answer.status == 200
    assert answer.body["count"] == len(answer.body["ids"])
    ids: list[str] = answer.body["ids"]
    return ids


async def stats(session: Session, sandbox: RunningSandbox) -> dict[str, Any]:
    answer = await get(session, f"{sandbox.url}/_sandbox/stats")
    assert answer.status == 200
    body: dict[str, Any] = answer.body
    return body


async def test_a_valid_batch_is_stored(session: Session, sandbox: RunningSandbox) -> None:
    answer = await post_events(session, sandbox.url, events(3))
    assert answer.status == 200
    assert answer.body == {"received": 3, "stored": 3, "duplicates": 0, "validate_only": False}
    assert await stored_ids(session, sandbox) == ["e0", "e1", "e2"]


# --- §11.1 auth --------------------------------------------------------------------------------

KEYED = {
    "api_keys": ["shared-key"],
    "advertiser_api_keys": ["ads-manager-key"],
    "pixels": [
        {"pixel_id": "pixel-1", "api_keys": ["key-1"]},
        {"pixel_id": "pixel-2", "api_keys": ["key-2"]},
    ],
}


@pytest.mark.parametrize(
    ("key", "pid", "status", "code"),
    [
        ("key-1", "pixel-1", 200, None),
        ("shared-key", "pixel-2", 200, None),
        (None, "pixel-1", 401, "invalid_api_key"),
        ("nope", "pixel-1", 401, "invalid_api_key"),
        ("test-key", "pixel-1", 401, "invalid_api_key"),  # not once keys are configured
        ("ads-manager-key", "pixel-1", 401, "advertiser_key"),
        ("key-2", "pixel-1", 403, "pixel_not_allowed"),
        ("key-1", "pixel-9", 404, "unknown_pixel"),
    ],
)
async def test_keys_per_pixel(
    session: Session,
    start_sandbox: StartSandbox,
    *,
    key: str | None,
    pid: str,
    status: int,
    code: str | None,
) -> None:
    sandbox = await start_sandbox(**KEYED)
    answer = await post_events(session, sandbox.url, events(1), pid=pid, key=key)
    assert answer.status == status
    if code is not None:
        assert answer.body["error"]["code"] == code
        assert key is None or key not in answer.body["error"]["message"]
        assert (await stored_ids(session, sandbox, pid)) == []


async def test_an_advertiser_key_gets_the_observed_message(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(**KEYED)
    answer = await post_events(session, sandbox.url, events(1), key="ads-manager-key")
    assert answer.status == 401
    assert answer.body["error"]["message"] == "Missing scopes: ads.third_party_events.write"


async def test_unknown_pixel_status_is_configurable(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(**KEYED, unknown_pixel_status=403)
    answer = await post_events(session, sandbox.url, events(1), pid="pixel-9", key="key-1")
    assert answer.status == 403


@pytest.mark.parametrize("header", ["Basic test-key", "Bearer", "test-key", "Bearer  "])
async def test_a_malformed_authorization_header_is_401(
    session: Session, sandbox: RunningSandbox, header: str
) -> None:
    async with session.post(
        f"{sandbox.url}/v1/events?pid=pixel-1",
        json={"events": events(1)},
        headers={"Authorization": header},
    ) as response:
        assert response.status == 401


async def test_without_configured_keys_test_key_sends_to_any_pixel(
    session: Session, sandbox: RunningSandbox
) -> None:
    for pid in ("pixel-1", "any-other-pixel"):
        assert (await post_events(session, sandbox.url, events(1), pid=pid)).status == 200
    assert (await post_events(session, sandbox.url, events(1), key="other")).status == 401


# --- §11.1 pid, body, size ---------------------------------------------------------------------


@pytest.mark.parametrize("pid", [None, ""])
async def test_a_missing_pid_is_a_pydantic_style_422(
    session: Session, sandbox: RunningSandbox, pid: str | None
) -> None:
    answer = await post_events(session, sandbox.url, events(1), pid=pid)
    assert answer.status == 422
    assert answer.body == {
        "detail": [
            {"type": "missing", "loc": ["query", "pid"], "msg": "Field required", "input": None}
        ]
    }


async def test_the_missing_pid_status_is_configurable(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(missing_pid_status=400)
    assert (await post_events(session, sandbox.url, events(1), pid=None)).status == 400


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (realistic_event(), 400, "missing_events", "Missing required field: events"),
        ([realistic_event()], 400, "missing_events", "Missing required field: events"),
        ({"events": {"id": "x"}}, 400, "invalid_type", "events must be an array"),
        ({"events": [], "user": {}}, 400, "unknown_key", "user is not a known request field"),
        ({"events": [], "validate_only": "true"}, 400, "invalid_type", None),
        ({"events": [], "validate_only": None}, 400, "invalid_type", None),
        ({"events": [], "integration_source": "_bad"}, 400, "invalid_integration_source", None),
        ({"events": [], "integration_source": 7}, 400, "invalid_integration_source", None),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_the_request_body_shape(
    session: Session,
    sandbox: RunningSandbox,
    *,
    body: Any,
    status: int,
    code: str,
    message: str | None,
) -> None:
    answer = await post_events(session, sandbox.url, body=body)
    assert answer.status == status
    assert answer.body["error"]["code"] == code
    assert answer.body["error"]["type"] == "invalid_request_error"
    if message is not None:
        assert answer.body["error"]["message"] == message


async def test_integration_source_is_trimmed_and_lowercased_before_validation(
    session: Session, sandbox: RunningSandbox
) -> None:
    answer = await post_events(session, sandbox.url, events(1), integration_source=" Acme_Kafka ")
    assert answer.status == 200


async def test_unknown_request_keys_follow_the_rules(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(rules={"reject_unknown_fields": False})
    assert (await post_events(session, sandbox.url, events(1), extra=1)).status == 200


@pytest.mark.parametrize(
    ("content_type", "data"),
    [("text/plain", orjson.dumps({"events": []})), ("application/json", b"{not json")],
)
async def test_not_json_is_400(
    session: Session, sandbox: RunningSandbox, content_type: str, data: bytes
) -> None:
    async with session.post(
        f"{sandbox.url}/v1/events?pid=pixel-1",
        data=data,
        headers={"Authorization": "Bearer test-key", "Content-Type": content_type},
    ) as response:
        assert response.status == 400


async def gzip_post(session: Session, sandbox: RunningSandbox) -> int:
    async with session.post(
        f"{sandbox.url}/v1/events?pid=pixel-1",
        data=gzip.compress(orjson.dumps({"events": events(2)})),
        headers={
            "Authorization": "Bearer test-key",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    ) as response:
        return response.status


async def test_gzip_is_off_by_default_and_can_be_enabled(
    session: Session, start_sandbox: StartSandbox
) -> None:
    assert await gzip_post(session, await start_sandbox()) == 415
    sandbox = await start_sandbox(accept_gzip=True)
    assert await gzip_post(session, sandbox) == 200
    assert await stored_ids(session, sandbox) == ["e0", "e1"]


async def test_at_most_1000_events(session: Session, start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox()
    assert (await post_events(session, sandbox.url, events(1000))).status == 200
    answer = await post_events(session, sandbox.url, events(1001, prefix="x"))
    assert answer.status == 400
    assert (answer.body["error"]["code"], answer.body["error"]["param"]) == (
        "too_many_events",
        "events",
    )
    assert len(await stored_ids(session, sandbox)) == 1000
    sandbox = await start_sandbox(too_many_events_status=413)
    assert (await post_events(session, sandbox.url, events(1001))).status == 413


async def test_empty_events_accepted_by_default(
    session: Session, start_sandbox: StartSandbox
) -> None:
    answer = await post_events(session, (await start_sandbox()).url, [])
    assert (answer.status, answer.body["received"]) == (200, 0)
    sandbox = await start_sandbox(accept_empty_events=False)
    assert (await post_events(session, sandbox.url, [])).status == 400


async def test_max_body_size_gives_413(session: Session, start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(max_body_bytes=10_000)
    assert (await post_events(session, sandbox.url, events(5))).status == 200
    answer = await post_events(session, sandbox.url, events(50, prefix="big"))
    assert answer.status == 413
    assert answer.body["error"]["code"] == "body_too_large"
    assert len(await stored_ids(session, sandbox)) == 5


async def test_a_large_batch_passes_without_a_body_limit(
    session: Session, sandbox: RunningSandbox
) -> None:
    batch = events(1000)
    for event in batch:
        event["user"]["user_agent"] = "Mozilla/5.0 " + "x" * 2000  # ~2.5 MB body
    assert (await post_events(session, sandbox.url, batch)).status == 200


async def test_other_paths_404_and_methods_405(session: Session, sandbox: RunningSandbox) -> None:
    assert (await get(session, f"{sandbox.url}/v1/event")).status == 404
    assert (await get(session, f"{sandbox.url}/v1/events?pid=pixel-1")).status == 405


# --- atomic batches and the error body ----------------------------------------------------------


async def test_one_bad_event_rejects_the_whole_batch(
    session: Session, sandbox: RunningSandbox
) -> None:
    batch = events(6)
    batch[3]["data"]["currency"] = "usx"
    answer = await post_events(session, sandbox.url, batch)
    assert answer.status == 400
    assert answer.body == {
        "error": {
            "message": "events[3].data.currency must be an ISO 4217 currency code",
            "type": "invalid_request_error",
            "param": "events[3].data.currency",
            "code": "invalid_currency",
        }
    }
    assert await stored_ids(session, sandbox) == []
    counted = await stats(session, sandbox)
    assert counted["rejected"] == {"invalid_currency": 1}
    assert counted["accepted"] == 0
    batch[3]["data"]["currency"] = "usd"
    assert (await post_events(session, sandbox.url, batch)).status == 200
    assert len(await stored_ids(session, sandbox)) == 6


async def test_the_first_bad_event_is_named(session: Session, sandbox: RunningSandbox) -> None:
    batch: list[object] = [*events(5)]
    batch[2] = "not an event"
    batch[4] = realistic_event(timestamp_ms=NOW_MS - WINDOW_PAST_MS - 1)
    answer = await post_events(session, sandbox.url, batch)
    assert answer.body["error"]["param"] == "events[2]"
    assert answer.body["error"]["code"] == "not_an_object"


async def test_the_error_body_can_be_pydantic_style(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(error_format="detail")
    batch = events(3)
    batch[1]["data"]["contents"][0]["quantity"] = "2"
    answer = await post_events(session, sandbox.url, batch)
    assert answer.status == 400
    assert answer.body == {
        "detail": [
            {
                "type": "invalid_type",
                "loc": ["body", "events", 1, "data", "contents", 0, "quantity"],
                "msg": "events[1].data.contents[0].quantity must be a JSON integer",
            }
        ]
    }
    answer = await post_events(session, sandbox.url, events(1), key="wrong")
    assert answer.body == {"detail": "Missing or invalid API key in Authorization header."}


async def test_the_timestamp_window_uses_the_sandbox_clock(
    session: Session, sandbox: RunningSandbox, clock: FakeClock
) -> None:
    event = realistic_event(timestamp_ms=NOW_MS - WINDOW_PAST_MS)
    assert (await post_events(session, sandbox.url, [event])).status == 200
    clock.now_ms += 1
    late = realistic_event("late", timestamp_ms=NOW_MS - WINDOW_PAST_MS)
    answer = await post_events(session, sandbox.url, [late])
    assert answer.body["error"]["code"] == "timestamp_out_of_window"


async def test_the_clock_can_be_shifted_at_run_time(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(clock_offset_ms=-1)
    event = realistic_event(timestamp_ms=NOW_MS)  # 1 ms ahead of the sandbox clock: fine
    assert (await post_events(session, sandbox.url, [event])).status == 200
    async with session.post(
        f"{sandbox.url}/_sandbox/clock", json={"offset_ms": WINDOW_PAST_MS + 1}
    ) as response:
        assert response.status == 200
        assert (await response.json())["now_ms"] == NOW_MS + WINDOW_PAST_MS + 1
    answer = await post_events(session, sandbox.url, [realistic_event("again")])
    assert answer.body["error"]["code"] == "timestamp_out_of_window"


async def test_rules_per_pixel(session: Session, start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(
        pixels=[
            {"pixel_id": "legacy", "rules": {"accept_legacy_user_fields": True}},
            {"pixel_id": "strict"},
        ]
    )
    event = realistic_event()
    event["user"] = {"email_sha256": "a" * 64, "country": "FR"}
    assert (await post_events(session, sandbox.url, [event], pid="legacy")).status == 200
    answer = await post_events(session, sandbox.url, [event], pid="strict")
    assert answer.body["error"]["param"] == "events[0].user.email_sha256"


# --- validate_only, storage, dedup ---------------------------------------------------------------


async def test_validate_only_validates_but_stores_nothing(
    session: Session, sandbox: RunningSandbox
) -> None:
    answer = await post_events(session, sandbox.url, events(4), validate_only=True)
    assert answer.body == {"received": 4, "stored": 0, "duplicates": 0, "validate_only": True}
    assert await stored_ids(session, sandbox) == []
    monitoring = await get(session, f"{sandbox.url}/v1/conversions/events?pid=pixel-1")
    assert monitoring.body["data"] == []
    # Not in the dedup index either: the same events are then stored for real.
    answer = await post_events(session, sandbox.url, events(4), validate_only=False)
    assert (answer.body["stored"], answer.body["duplicates"]) == (4, 0)
    bad = events(2)
    bad[1]["type"] = "purchase"
    answer = await post_events(session, sandbox.url, bad, validate_only=True)
    assert answer.body["error"]["param"] == "events[1].type"
    counted = await stats(session, sandbox)
    assert (counted["validated"], counted["accepted"]) == (4, 4)


async def test_duplicates_are_answered_with_success_and_counted(
    session: Session, sandbox: RunningSandbox
) -> None:
    assert (await post_events(session, sandbox.url, events(3))).body["stored"] == 3
    answer = await post_events(session, sandbox.url, events(5))  # e0..e2 again, then e3, e4
    assert answer.status == 200
    assert (answer.body["stored"], answer.body["duplicates"]) == (2, 3)
    counted = await stats(session, sandbox)
    assert (counted["accepted"], counted["duplicates"], counted["stored"]) == (5, 3, 5)
    assert counted["pixels"]["pixel-1"]["duplicates"] == 3


async def test_the_first_copy_wins(session: Session, sandbox: RunningSandbox) -> None:
    first = realistic_event("same", data={"type": "contents", "amount": 1, "currency": "EUR"})
    second = realistic_event("same", data={"type": "contents", "amount": 2, "currency": "EUR"})
    answer = await post_events(session, sandbox.url, [first, second])  # inside one batch too
    assert (answer.body["stored"], answer.body["duplicates"]) == (1, 1)
    await post_events(session, sandbox.url, [second])
    monitoring = await get(session, f"{sandbox.url}/v1/conversions/events?pid=pixel-1")
    assert [event["data"]["amount"] for event in monitoring.body["data"]] == [1]


@pytest.mark.parametrize(
    ("first", "second", "duplicate"),
    [
        ({"type": "order_created"}, {"type": "order_created"}, True),
        ({"type": "order_created"}, {"type": "checkout_started"}, False),
        (
            {"type": "custom", "custom_event_name": "Signup", "data": {"type": "custom"}},
            {"type": "custom", "custom_event_name": "signup", "data": {"type": "custom"}},
            True,
        ),
        (
            {"type": "custom", "custom_event_name": "signup", "data": {"type": "custom"}},
            {"type": "custom", "custom_event_name": "newsletter", "data": {"type": "custom"}},
            False,
        ),
    ],
)
async def test_the_dedup_key_is_pixel_name_and_id(
    session: Session,
    sandbox: RunningSandbox,
    first: dict[str, Any],
    second: dict[str, Any],
    duplicate: bool,
) -> None:
    await post_events(session, sandbox.url, [realistic_event("id-1", **first)])
    answer = await post_events(session, sandbox.url, [realistic_event("id-1", **second)])
    assert answer.body["duplicates"] == (1 if duplicate else 0)
    other_pixel = await post_events(
        session, sandbox.url, [realistic_event("id-1", **second)], pid="pixel-2"
    )
    assert other_pixel.body["stored"] == 1


async def test_dedup_inside_one_batch_can_be_turned_off(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(dedup_within_batch=False)
    answer = await post_events(session, sandbox.url, [realistic_event("a"), realistic_event("a")])
    assert (answer.body["stored"], answer.body["duplicates"]) == (2, 0)
    answer = await post_events(session, sandbox.url, [realistic_event("a")])
    assert (answer.body["stored"], answer.body["duplicates"]) == (0, 1)
    assert await stored_ids(session, sandbox) == ["a"]


async def test_the_dedup_window_is_configurable(
    session: Session, start_sandbox: StartSandbox, clock: FakeClock
) -> None:
    sandbox = await start_sandbox(dedup_window_s=60)
    await post_events(session, sandbox.url, [realistic_event("a")])
    clock.now_ms += 60_000
    assert (await post_events(session, sandbox.url, [realistic_event("a")])).body["duplicates"] == 1
    clock.now_ms += 60_001
    assert (await post_events(session, sandbox.url, [realistic_event("a")])).body["stored"] == 1


# --- monitoring, stats, ids, reset ---------------------------------------------------------------


async def test_monitoring_lists_recent_events_newest_first(
    session: Session, sandbox: RunningSandbox, clock: FakeClock
) -> None:
    await post_events(session, sandbox.url, events(3))
    clock.now_ms += 5
    await post_events(session, sandbox.url, [realistic_event("last")])
    answer = await get(session, f"{sandbox.url}/v1/conversions/events?pid=pixel-1&limit=2")
    assert answer.status == 200
    assert [event["id"] for event in answer.body["data"]] == ["last", "e2"]
    newest = answer.body["data"][0]
    assert newest["channel"] == "server_to_server"
    assert newest["received_ms"] == NOW_MS + 5
    assert newest["oppref"] == "oppref_abc"  # stored byte for byte
    assert (await get(session, f"{sandbox.url}/v1/conversions/events")).status == 400
    assert (await get(session, f"{sandbox.url}/v1/conversions/events?pid=x&limit=a")).status == 400
    empty = await get(session, f"{sandbox.url}/v1/conversions/events?pid=unknown")
    assert empty.body["data"] == []


async def test_every_stored_id_is_listed_beyond_the_monitoring_limit(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(recent_events_per_pixel=10)
    for batch in range(3):
        assert (await post_events(session, sandbox.url, events(1000, f"b{batch}-"))).status == 200
    custom = realistic_event(
        "c1", type="custom", custom_event_name="Signup", data={"type": "custom"}
    )
    await post_events(session, sandbox.url, [custom])
    ids = await stored_ids(session, sandbox)
    assert len(ids) == 3001
    assert set(ids) == {f"b{b}-{i}" for b in range(3) for i in range(1000)} | {"c1"}
    only_custom = await get(session, f"{sandbox.url}/_sandbox/events?pid=pixel-1&type=signup")
    assert only_custom.body["ids"] == ["c1"]
    monitoring = await get(session, f"{sandbox.url}/v1/conversions/events?pid=pixel-1&limit=50")
    assert len(monitoring.body["data"]) == 10
    assert (await get(session, f"{sandbox.url}/_sandbox/events")).status == 400


async def test_stats_count_per_pixel_and_reset_clears(
    session: Session, sandbox: RunningSandbox
) -> None:
    await post_events(session, sandbox.url, events(2), pid="a")
    await post_events(session, sandbox.url, events(2), pid="a")
    await post_events(session, sandbox.url, events(1), pid="b", key="bad")
    await post_events(session, sandbox.url, events(1), pid=None)
    counted = await stats(session, sandbox)
    assert counted["requests"] == 4
    assert counted["rejected"] == {"invalid_api_key": 1, "missing_pid": 1}
    assert counted["pixels"]["a"] == {
        "requests": 2,
        "accepted": 2,
        "duplicates": 2,
        "validated": 0,
        "rejected": {},
        "faults": {},
        "stored": 2,
    }
    assert counted["pixels"]["b"]["rejected"] == {"invalid_api_key": 1}
    async with session.post(f"{sandbox.url}/_sandbox/reset") as response:
        assert response.status == 200
    counted = await stats(session, sandbox)
    assert (counted["requests"], counted["stored"], counted["pixels"]) == (0, 0, {})
    assert (await post_events(session, sandbox.url, events(2), pid="a")).body["stored"] == 2
