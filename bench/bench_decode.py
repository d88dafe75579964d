"""Micro-benchmark of Avro decoding: µs per event, fastavro vs cavro, plain and Confluent framing.

    .venv/bin/python -m bench.bench_decode [--events N] [--repeats R] [--json FILE]

Events are the realistic samples the demo and the end-to-end benchmark use
(`consumer.devtools.samples`).
Rows: the bare library call (the floor: a parsed schema, no checks) and the product's
`Decoder.decode_batch` (which adds the trailing-bytes check, the extras map and, with Confluent
framing, the header and the schema-id cache; the registry is the local stub, consulted once).
Variants run interleaved and the best round counts: compare ratios within one run, a shared VM
is noisy.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fastavro

import schemas
from consumer.avro.decoding import DecodeFailure, Decoder, Encoder
from consumer.config import ConfigError, SchemaSettings
from consumer.devtools.registry_stub import RegistryStub
from consumer.devtools.samples import generate_events

NOW_MS = 1_773_892_800_000
BATCH = 1000  # the consumer decodes one consume() batch at a time


def _floors(values: Sequence[bytes]) -> dict[str, Callable[[], object]]:
    schema = schemas.load_schema(schemas.TRACKING_EVENT)
    parsed = fastavro.parse_schema(schema)
    read = fastavro.schemaless_reader
    floors: dict[str, Callable[[], object]] = {
        "fastavro schemaless_reader (floor)": lambda: [
            read(io.BytesIO(v), parsed, None) for v in values
        ],
    }
    try:
        import cavro
    except ImportError:
        return floors
    decode = cavro.Schema(schema, record_decodes_to_dict=True).binary_decode
    floors["cavro binary_decode (floor)"] = lambda: [decode(v) for v in values]
    return floors


def _batched(decoder: Decoder, values: Sequence[bytes]) -> Callable[[], object]:
    batches = [values[i : i + BATCH] for i in range(0, len(values), BATCH)]
    return lambda: [decoder.decode_batch(batch) for batch in batches]


def run(events: int = 5000, repeats: int = 7) -> dict[str, Any]:
    samples = generate_events(events, seed=1, now_ms=NOW_MS)
    plain_settings = SchemaSettings(decoder="fastavro")
    plain_encoder = Encoder(plain_settings)
    plain = [plain_encoder.encode(e, "bench") for e in samples]
    purchases = [v for v, e in zip(plain, samples, strict=True) if e["event_name"] == "purchase"]
    variants = _floors(plain)
    engines = ["fastavro", "cavro", "native"]
    with RegistryStub() as registry:
        confluent_settings = SchemaSettings(registry_url=registry.url)
        confluent_encoder = Encoder(confluent_settings)
        confluent = [confluent_encoder.encode(e, "bench") for e in samples]
        for engine in engines:
            try:
                decoder = Decoder(SchemaSettings(decoder=engine))
            except ConfigError:
                continue  # not installed (cavro) or not built (native)
            variants[f"Decoder {engine}, plain"] = _batched(decoder, plain)
            variants[f"Decoder {engine}, purchases only"] = _batched(decoder, purchases)
            registry_decoder = Decoder(SchemaSettings(registry_url=registry.url, decoder=engine))
            first = registry_decoder.decode_batch(confluent[:1])  # fetch the schema once
            assert not isinstance(first[0], DecodeFailure)
            variants[f"Decoder {engine}, Confluent + registry"] = _batched(
                registry_decoder, confluent
            )
        timings = _interleaved(variants, repeats)
    counts = {name: len(purchases) if "purchases" in name else len(plain) for name in variants}
    return {
        "events": len(plain),
        "avg_bytes": round(sum(map(len, plain)) / len(plain)),
        "purchase_avg_bytes": round(sum(map(len, purchases)) / max(1, len(purchases))),
        "us_per_event": {
            name: {
                "best": round(min(times) / counts[name] * 1e6, 2),
                "median": round(statistics.median(times) / counts[name] * 1e6, 2),
            }
            for name, times in timings.items()
        },
    }


def _interleaved(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, call in variants.items():
            gc.collect()
            started = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result = run(args.events, args.repeats)
    print(
        f"{result['events']} events, {result['avg_bytes']} B average "
        f"({result['purchase_avg_bytes']} B per purchase with 3 items)"
    )
    print(f"{'variant':<44}{'best µs/event':>15}{'median':>10}")
    for name, numbers in result["us_per_event"].items():
        print(f"{name:<44}{numbers['best']:>15.2f}{numbers['median']:>10.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
