"""Fault injection, each mode observed by a real aiohttp client over 127.0.0.1."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from consumer.sandbox.server import RunningSandbox
from consumer.sandbox.settings import FaultStep
from tests.consumer.sandbox.conftest import StartSandbox
from tests.consumer.sandbox.sandbox_helpers import FakeClock, events, get, post_events

Session = aiohttp.ClientSession


async def set_faults(
    session: Session, sandbox: RunningSandbox, faults: dict[str, Any], pid: str | None = None
) -> dict[str, Any]:
    query = f"?pid={pid}" if pid else ""
    async with session.post(f"{sandbox.url}/_sandbox/faults{query}", json=faults) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def stored_count(session: Session, sandbox: RunningSandbox, pid: str = "pixel-1") -> int:
    count: int = (await get(session, f"{sandbox.url}/_sandbox/events?pid={pid}")).body["count"]
    return count


async def statuses(session: Session, sandbox: RunningSandbox, requests: int) -> list[int]:
    return [
        (await post_events(session, sandbox.url, events(1, prefix=f"r{index}-"))).status
        for index in range(requests)
    ]


async def test_a_scripted_sequence_of_statuses(
    session: Session, start_sandbox: StartSandbox
) -> None:
    script = [
        {"status": 503},
        {"status": 429, "retry_after_s": 7},
        {"status": 429},
        {"status": 500},
        {"status": 502},
        {},
    ]
    sandbox = await start_sandbox(faults={"script": script})
    answers = [await post_events(session, sandbox.url, events(2)) for _ in range(7)]
    assert [a.status for a in answers] == [503, 429, 429, 500, 502, 200, 200]
    assert answers[1].headers["Retry-After"] == "7"
    assert "Retry-After" not in answers[2].headers
    assert answers[0].body["error"]["type"] == "server_error"
    assert answers[1].body["error"]["type"] == "rate_limit_error"
    assert (answers[5].body["stored"], answers[6].body["duplicates"]) == (2, 2)
    stats = (await get(session, f"{sandbox.url}/_sandbox/stats")).body
    assert stats["faults"] == {"status_503": 1, "status_429": 2, "status_500": 1, "status_502": 1}
    assert stats["pixels"]["pixel-1"]["faults"]["status_429"] == 2
    assert (stats["requests"], stats["accepted"]) == (7, 2)


async def test_faults_are_set_at_run_time(session: Session, sandbox: RunningSandbox) -> None:
    described = await set_faults(session, sandbox, {"script": [{"status": 503}] * 2})
    assert described["script_left"] == 2
    assert await statuses(session, sandbox, 3) == [503, 503, 200]
    assert (await get(session, f"{sandbox.url}/_sandbox/faults")).body["script_left"] == 0
    await set_faults(session, sandbox, {})  # clears
    assert await statuses(session, sandbox, 2) == [200, 200]


@pytest.mark.parametrize(
    "faults",
    [
        {"rate": 2},
        {"script": [{"status": 200}]},
        {"script": [{"status": 503, "drop": "before_read"}]},
        {"script": [{"retry_after_s": 3}]},
        {"script": [{"drop": "sometimes"}]},
        {"unknown": 1},
    ],
)
async def test_invalid_faults_are_refused(
    session: Session, sandbox: RunningSandbox, faults: dict[str, Any]
) -> None:
    async with session.post(f"{sandbox.url}/_sandbox/faults", json=faults) as response:
        assert response.status == 400
        assert (await response.json())["detail"]
    assert await statuses(session, sandbox, 1) == [200]


async def test_added_latency(session: Session, start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(faults={"latency_ms": 150, "script": [{"latency_ms": 600}]})
    timings = []
    for index in range(2):
        started = time.monotonic()
        assert (await post_events(session, sandbox.url, events(1, f"{index}-"))).status == 200
        timings.append(time.monotonic() - started)
    assert timings[0] >= 0.75
    assert 0.15 <= timings[1] < 0.75  # the script step is used once
    stats = (await get(session, f"{sandbox.url}/_sandbox/stats")).body
    assert stats["faults"] == {"latency": 2}


async def test_drop_before_the_body_is_read_stores_nothing(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(faults={"script": [{"drop": "before_read"}]})
    with pytest.raises(aiohttp.ClientError):
        await post_events(session, sandbox.url, events(3))
    assert await stored_count(session, sandbox) == 0
    assert (await post_events(session, sandbox.url, events(3))).body["stored"] == 3


async def test_drop_after_store_stores_but_the_client_sees_an_error(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(faults={"script": [{"drop": "after_store"}]})
    with pytest.raises(aiohttp.ClientError):
        await post_events(session, sandbox.url, events(3))
    assert await stored_count(session, sandbox) == 3
    retry = await post_events(session, sandbox.url, events(3))  # the client's retry: deduped
    assert retry.status == 200
    assert (retry.body["stored"], retry.body["duplicates"]) == (0, 3)
    stats = (await get(session, f"{sandbox.url}/_sandbox/stats")).body
    assert stats["faults"] == {"drop_after_store": 1}
    assert (stats["accepted"], stats["duplicates"]) == (3, 3)


async def test_a_rate_limit_per_pixel(
    session: Session, start_sandbox: StartSandbox, clock: FakeClock
) -> None:
    sandbox = await start_sandbox(faults={"rate_limit_rps": 2})
    answers = [await post_events(session, sandbox.url, events(1)) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    assert answers[2].headers["Retry-After"] == "1"
    assert answers[2].body["error"]["code"] == "rate_limited"
    assert (await post_events(session, sandbox.url, events(1), pid="pixel-2")).status == 200
    clock.now_ms += 500  # one token back
    assert await statuses(session, sandbox, 2) == [200, 429]
    stats = (await get(session, f"{sandbox.url}/_sandbox/stats")).body
    assert stats["pixels"]["pixel-1"]["rejected"] == {"rate_limited": 2}


async def test_a_rate_limit_without_retry_after(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(faults={"rate_limit_rps": 1, "rate_limit_retry_after": False})
    answers = [await post_events(session, sandbox.url, events(1)) for _ in range(2)]
    assert [a.status for a in answers] == [200, 429]
    assert "Retry-After" not in answers[1].headers


async def test_poison_ids_reject_the_batch_naming_the_event(
    session: Session, start_sandbox: StartSandbox
) -> None:
    sandbox = await start_sandbox(faults={"poison_ids": ["e7"]})
    answer = await post_events(session, sandbox.url, events(10))
    assert answer.status == 400
    assert answer.body["error"]["param"] == "events[7].id"
    assert answer.body["error"]["code"] == "poison_id"
    assert await stored_count(session, sandbox) == 0
    batch = [event for event in events(10) if event["id"] != "e7"]
    assert (await post_events(session, sandbox.url, batch)).body["stored"] == 9
    await set_faults(session, sandbox, {"poison_ids": ["e1"]})
    answer = await post_events(session, sandbox.url, events(3, prefix="x") + events(2))
    assert answer.body["error"]["param"] == "events[4].id"


async def test_a_fraction_of_faults_is_deterministic_with_a_seed(
    session: Session, start_sandbox: StartSandbox
) -> None:
    faults = {"rate": 0.5, "choices": [{"status": 503}, {"status": 429}], "seed": 42}
    first = await statuses(session, await start_sandbox(faults=faults), 40)
    second = await statuses(session, await start_sandbox(faults=faults), 40)
    other_seed = await statuses(session, await start_sandbox(faults={**faults, "seed": 7}), 40)
    assert first == second
    assert first != other_seed
    assert set(first) == {200, 429, 503}
    assert 8 <= first.count(200) <= 32


async def test_the_sandbox_seed_drives_the_faults_too(
    session: Session, start_sandbox: StartSandbox
) -> None:
    faults = {"rate": 0.5}
    first = await statuses(session, await start_sandbox(seed=1, faults=faults), 30)
    second = await statuses(session, await start_sandbox(seed=1, faults=faults), 30)
    assert first == second
    assert set(first) == {200, 503}


async def test_faults_per_pixel(session: Session, start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(
        pixels=[
            {"pixel_id": "down", "faults": {"script": [{"status": 503}] * 2}},
            {"pixel_id": "up"},
        ]
    )
    assert (await post_events(session, sandbox.url, events(1), pid="up")).status == 200
    down = [(await post_events(session, sandbox.url, events(1), pid="down")).status for _ in "abc"]
    assert down == [503, 503, 200]
    await set_faults(session, sandbox, {"script": [{"status": 500}]}, pid="up")
    assert (await post_events(session, sandbox.url, events(1), pid="up")).status == 500
    assert (await post_events(session, sandbox.url, events(1), pid="down")).status == 200


async def test_a_fault_step_answers_its_body_verbatim(
    session: Session, start_sandbox: StartSandbox
) -> None:
    text = "user a@b.example sent Bearer sk-1234567890 from 192.0.2.1"
    script = [{"status": 400, "body": text}, {"status": 422, "body": '{"detail": "x"}'}]
    sandbox = await start_sandbox(faults={"script": script})
    url = f"{sandbox.url}/v1/events?pid=pixel-1"
    answers = []
    for _ in script:
        async with session.post(url, json={"events": []}) as response:
            answers.append((response.status, response.content_type, await response.text()))
    assert answers == [
        (400, "text/plain", text),
        (422, "application/json", '{"detail": "x"}'),
    ]
    with pytest.raises(ValueError, match="body needs a status"):
        FaultStep(body="x")
