"""The raw ceiling: a bare `confluent_kafka.Consumer` draining topics with no processing.

    python -m bench.bench_raw --bootstrap HOST:PORT --group G --events N TOPIC...

Prints one JSON object: events, seconds from the first record to the last, events/s. Uses the
product's consume batch size and consumer defaults (prefetch bound, fetch backoff), so the figure
is the ceiling for its loop.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson
from confluent_kafka import Consumer

from consumer.config import KAFKA_CONSUMER_DEFAULTS

_BATCH = 1000


def drain(bootstrap: str, group: str, topics: list[str], events: int, timeout_s: float) -> dict:
    settings = dict(KAFKA_CONSUMER_DEFAULTS)
    settings.update(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer = Consumer(settings)
    consumer.subscribe(topics)
    seen = 0
    first = None
    deadline = time.monotonic() + timeout_s
    try:
        while seen < events and time.monotonic() < deadline:
            messages = consumer.consume(_BATCH, 0.1)
            if messages and first is None:
                first = time.monotonic()
            seen += sum(1 for m in messages if m.error() is None)
        elapsed = time.monotonic() - (first or time.monotonic())
    finally:
        consumer.close()
    return {
        "events": seen,
        "busy_s": round(elapsed, 3),
        "events_per_s": round(seen / elapsed, 1) if elapsed > 0 else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()
    result = drain(args.bootstrap, args.group, args.topics, args.events, args.timeout)
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
