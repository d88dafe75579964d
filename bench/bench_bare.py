"""The bare loop: the product's own stages with nothing around them, on the product's backlog.

    python -m bench.bench_bare --bootstrap HOST:PORT --group G --events N [--now MS] TOPIC...

`consume(1000)` → the product's decode (the projection `Pipeline` uses) → `map_values` → one
`orjson.dumps` per event joined (what `Batch.body` does); no HTTP, no offsets, no commits. Same
consumer settings as `capi-consumer run` (`AppConfig.kafka_consumer_settings`), the product's
memory tuning. Prints one JSON object: events, wall and process CPU seconds (all threads) from
the first record to the last, events/s, µs of CPU per event. The product's overhead is its own
figures ÷ these (bench/run.py).
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson
from confluent_kafka import Consumer

from consumer.avro.decoding import Decoder
from consumer.cli.startup import tune_memory
from consumer.config import AppConfig
from transforms import Mapped, map_values

_BATCH = 1000


def drain(
    bootstrap: str, group: str, topics: list[str], events: int, now_ms: int, timeout_s: float
) -> dict[str, float]:
    tune_memory()
    config = AppConfig.model_validate({"kafka": {"bootstrap_servers": bootstrap}})
    compiled = config.compile()
    decoder = Decoder(config.schema_settings)
    paths = list(compiled.event_reader.index)
    project = decoder.projector(paths, compiled.items, list(compiled.item_reader.index))
    if project is None:
        read = compiled.event_reader.read
        whole = decoder.decode_batch

        def project(values: list[bytes]) -> list[object]:
            return [read(event) for event in whole(values)]

    dumps = orjson.dumps
    settings = config.kafka_consumer_settings()
    settings.update(
        {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer = Consumer(settings)
    consumer.subscribe(topics)
    seen = 0
    first_at = first_cpu = last_at = last_cpu = 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < events and time.monotonic() < deadline:
            messages = consumer.consume(_BATCH, 0.05)
            if not messages:
                continue
            if not seen:
                first_at, first_cpu = time.monotonic(), time.process_time()
            values = [m.value() for m in messages if m.error() is None]
            outcomes = [map_values(v, compiled, now_ms) for v in project(values)]  # type: ignore[arg-type]
            b",".join([dumps(o.event) for o in outcomes if isinstance(o, Mapped)])
            seen += len(values)
            last_at, last_cpu = time.monotonic(), time.process_time()
    finally:
        consumer.close()
    wall, cpu = last_at - first_at, last_cpu - first_cpu
    return {
        "events": seen,
        "busy_s": round(wall, 3),
        "busy_cpu_s": round(cpu, 3),
        "utilization": round(cpu / wall, 3) if wall > 0 else 0.0,
        "events_per_s": round(seen / wall, 1) if wall > 0 else 0.0,
        "cpu_us_per_event": round(cpu / seen * 1e6, 2) if seen else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--now", type=int, default=int(time.time() * 1000))
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()
    result = drain(args.bootstrap, args.group, args.topics, args.events, args.now, args.timeout)
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
