"""Sandbox throughput for valid 1000-event batches, on one core.

    .venv/bin/python -m bench.bench_sandbox [--batches N] [--repeats R] [--no-http]

Three figures, each in events/s (and µs/event):
- validation: `capi_rules.validate_event` over a freshly parsed batch (target ≥ 50k/s, issue 4);
- parse + validate: parsing the request body as the sandbox does (`server.parse_json`), then
  validation: the sandbox's CPU work before storing;
- HTTP end to end: `capi-consumer sandbox` in a child process, POSTs of pre-serialized bodies
  (2 in flight); parse, validation, dedup store and the HTTP stack together, measured as
  wall-clock events/s (the client shares the machine) and as the server's CPU per event.

The first two report the fastest batch of several passes (the cost on a quiet core) and the
median batch (a shared VM is noisy); compare figures within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from consumer.sandbox.server import parse_json
from transforms.capi_rules import validate_event

TARGET_EVENTS_PER_S = 50_000
BATCH = 1000
HASH = "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"


def capi_event(index: int, now_ms: int) -> dict[str, Any]:
    """A purchase as the consumer sends it (mapping.md §8 shape): 3 items, full identity."""
    return {
        "id": f"order_{index}",
        "type": "order_created",
        "timestamp_ms": now_ms - 60_000,
        "oppref": f"opp_{index:08x}",
        "action_source": "web",
        "source_url": f"https://shop.example.com/checkout/confirmation/{index}",
        "user": {
            "emails_sha256": [HASH],
            "phone_numbers_sha256": [HASH],
            "external_ids_sha256": [HASH],
            "first_names_sha256": [HASH],
            "last_names_sha256": [HASH],
            "countries": ["FR"],
            "cities": ["paris"],
            "regions": ["île-de-france"],
            "postal_codes": ["75011"],
            "ip_address": f"203.0.113.{index % 250}",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            "obref": f"ob_{index}",
        },
        "data": {
            "type": "contents",
            "amount": 12997,
            "currency": "EUR",
            "contents": [
                {
                    "id": f"sku_{n}",
                    "name": f"Product {n}",
                    "content_type": "product",
                    "quantity": n,
                    "amount": 2166,
                }
                for n in (1, 2, 3)
            ],
        },
    }


def request_bodies(batches: int, now_ms: int) -> list[bytes]:
    return [
        orjson.dumps(
            {"events": [capi_event(b * BATCH + i, now_ms) for i in range(BATCH)]},
        )
        for b in range(batches)
    ]


def seconds_per_batch(
    bodies: list[bytes], repeats: int, work: Callable[[bytes], float]
) -> tuple[float, float]:
    """(fastest, median) batch over `repeats` passes; `work` returns the seconds it measured."""
    timings = [work(body) for _ in range(repeats) for body in bodies]
    return min(timings), statistics.median(timings)


def validation_only(now_ms: int) -> Callable[[bytes], float]:
    def work(body: bytes) -> float:
        events = orjson.loads(body)["events"]  # parsed outside the timing, still in cache
        began = time.perf_counter()
        for event in events:
            if validate_event(event, now_ms) is not None:
                raise AssertionError("the benchmark batch must be valid")
        return time.perf_counter() - began

    return work


def parse_and_validate(now_ms: int) -> Callable[[bytes], float]:
    def work(body: bytes) -> float:
        began = time.perf_counter()
        parsed = parse_json(body)
        assert isinstance(parsed, dict)
        for event in parsed["events"]:
            if validate_event(event, now_ms) is not None:
                raise AssertionError("the benchmark batch must be valid")
        return time.perf_counter() - began

    return work


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux `/proc`)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def http_end_to_end(bodies: list[bytes], in_flight: int = 2) -> tuple[float, float]:
    """Through a `capi-consumer sandbox` child process: (events/s, server CPU µs/event)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPI_CONSUMER_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "consumer.cli", "sandbox", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.search(r"http://\S+", line)
        if match is None:
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        url = f"{match.group(0)}/v1/events?pid=bench"
        headers = {"Authorization": "Bearer test-key", "Content-Type": "application/json"}
        queue = list(bodies)
        async with aiohttp.ClientSession() as session:

            async def sender() -> None:
                while queue:
                    async with session.post(url, data=queue.pop(), headers=headers) as response:
                        if response.status != 200:
                            raise RuntimeError(f"sandbox answered {response.status}")
                        await response.read()

            began, cpu_began = time.perf_counter(), cpu_seconds(process.pid)
            await asyncio.gather(*(sender() for _ in range(in_flight)))
            elapsed, cpu = time.perf_counter() - began, cpu_seconds(process.pid) - cpu_began
        events = len(bodies) * BATCH
        return events / elapsed, cpu / events * 1e6
    finally:
        process.terminate()
        await process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=10, help="distinct 1000-event batches")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-http", action="store_true", help="skip the end-to-end figure")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()

    now_ms = time.time_ns() // 1_000_000
    bodies = request_bodies(args.batches, now_ms)
    results: dict[str, float] = {}
    for name, work in (
        ("validation", validation_only(now_ms)),
        ("parse + validate", parse_and_validate(now_ms)),
    ):
        fastest, median = seconds_per_batch(bodies, args.repeats, work)
        results[name] = BATCH / fastest
        results[f"{name} (median batch)"] = BATCH / median
    if not args.no_http:
        runs = [asyncio.run(http_end_to_end(bodies * 3)) for _ in range(3)]
        results["HTTP end to end"] = statistics.median(rate for rate, _ in runs)
        results["HTTP, server CPU only"] = 1e6 / statistics.median(cpu for _, cpu in runs)

    print(f"valid {BATCH}-event batches, {len(bodies[0]) / BATCH:.0f} bytes/event, one core")
    for name, per_second in results.items():
        print(f"{name + ':':32} {per_second:9,.0f} events/s {1e6 / per_second:6.2f} µs/event")
    verdict = "meets" if results["validation"] >= TARGET_EVENTS_PER_S else "MISSES"
    print(f"validation {verdict} the target of {TARGET_EVENTS_PER_S:,} events/s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"events_per_s": results, "target": TARGET_EVENTS_PER_S}, file, indent=2)


if __name__ == "__main__":
    main()
