"""`make bench`: the product's throughput, CPU, latency and memory, next to its ceilings and a peer.

    .venv/bin/python -m bench.run                  # BENCH_EVENTS=200000 by default
    BENCH_EVENTS=1000000 .venv/bin/python -m bench.run
    .venv/bin/python -m bench.run --profile 100000 # cProfile of an in-process Pipeline

Everything runs here on 127.0.0.1: the embedded broker (a child process), the bench sink (a
thread), the measured processes pinned to core 0 with `taskset` while this process and the
broker keep to core 1. Every target is a ratio inside one run (see docs/benchmarks.md). Prints a
table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench import bench_e2e as e2e
from bench.bench_transform import measure
from bench.sink import Sink
from consumer.avro.decoding import Decoder
from consumer.config import AppConfig, SchemaSettings
from consumer.devtools.embedded_broker import EmbeddedBroker
from transforms import CompiledMapping, Mapped, map_event, map_values

RESULTS = Path(__file__).with_name("results")
PEER_PYTHON = Path(__file__).with_name(".peer-venv") / "bin" / "python"
POOL = 5_000
# Every decoder the product can use; the peer uses the same one as the product (`auto`).
ENGINES = ("fastavro", "cavro", "native")
_PACKAGES = ("confluent-kafka", "fastavro", "cavro", "orjson", "aiohttp", "pydantic")


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


def pipeline_reader(
    decoder: Decoder, compiled: CompiledMapping
) -> tuple[Callable[[list[bytes]], list[Any]], bool]:
    """What the pipeline decodes with, and whether it is the projection (else whole records,
    then read by path)."""
    project = decoder.projector(
        list(compiled.event_reader.index), compiled.items, list(compiled.item_reader.index)
    )
    if project is not None:
        return project, True
    read = compiled.event_reader.read
    return (lambda batch: [read(event) for event in decoder.decode_batch(batch)]), False


def stages(values: list[bytes], now_ms: int) -> dict[str, float]:
    """µs/event of each stage in isolation, on core 0: min over short windows (bench_transform).

    Whole-record decoding and `map_event` (what the peer runs), and the pipeline's own path:
    the projecting decode and `map_values`."""
    decoders = {
        engine: Decoder(SchemaSettings(decoder=engine))  # type: ignore[arg-type]
        for engine in ENGINES
    }
    events = decoders["fastavro"].decode_batch(values)
    compiled = AppConfig.model_validate({}).compile()
    read, _ = pipeline_reader(Decoder(SchemaSettings()), compiled)
    projected = read(values)
    decode_stages = {
        **{
            f"decode_{engine}": (lambda v, d=decoder: d.decode_batch([v]), values)
            for engine, decoder in decoders.items()
        },
        "decode_pipeline": (lambda v: read([v]), values),
    }
    mapped = []
    for event in events:
        outcome = map_event(event, compiled, now_ms)  # type: ignore[arg-type]
        assert isinstance(outcome, Mapped)
        mapped.append(outcome.event)
    batches = [mapped[start : start + 1000] for start in range(0, len(mapped) - 999, 1000)]
    per_event_batches = batches  # one orjson call per event, then a join (what Batch.body does)

    def dumps_per_event(batch: list[dict[str, Any]]) -> bytes:
        return b",".join([orjson.dumps(event) for event in batch])

    map_stages = {
        "map": (lambda e: map_event(e, compiled, now_ms), events),
        "map_values": (lambda v: map_values(v, compiled, now_ms), projected),
    }
    results = measure(
        {
            **decode_stages,
            **map_stages,
            "orjson_batch_x1000": (orjson.dumps, batches),
            "orjson_per_event_x1000": (dumps_per_event, per_event_batches),
        },
        rounds=3,
        window=1,
    )
    # The batch figures are per 1000 events; windows of one call each.
    results["orjson_batch"] = results.pop("orjson_batch_x1000") / 1000
    results["orjson_per_event"] = results.pop("orjson_per_event_x1000") / 1000
    windowed = measure({**decode_stages, **map_stages}, rounds=3, window=200)
    results.update(windowed)
    return {name: round(value, 2) for name, value in results.items()}


def map_command(pool: list[dict[str, Any]], lines: int, now_ms: int, directory: Path) -> dict:
    """`capi-consumer map` over `lines` JSON lines; startup measured on one line and removed."""
    path = directory / "events.jsonl"
    one = directory / "one.jsonl"
    encoded = [orjson.dumps(event) for event in pool]
    with path.open("wb") as file:
        for index in range(lines):
            file.write(encoded[index % len(encoded)] + b"\n")
    one.write_bytes(encoded[0] + b"\n")
    command = [e2e.CLI, "map", "--now", str(now_ms)]
    # This process keeps to core 1, and children inherit that: give the "all cores" run all.
    cores = os.cpu_count() or 1
    everywhere = (
        ["taskset", "-c", f"0-{cores - 1}", *command] if shutil.which("taskset") else command
    )
    costs = {}
    # Pinned to one core (one worker), and as a user runs it (a worker per core).
    for name, source, argv in (
        ("startup", one, e2e.pinned(command)),
        ("full", path, e2e.pinned(command)),
        ("startup_all_cores", one, everywhere),
        ("full_all_cores", path, everywhere),
    ):
        with source.open("rb") as stdin:
            costs[name] = e2e.run_measured(argv, 300, stdin=stdin)
    steady = costs["full"].wall_s - costs["startup"].wall_s
    steady_all = costs["full_all_cores"].wall_s - costs["startup_all_cores"].wall_s
    return {
        "lines": lines,
        "wall_s": round(costs["full"].wall_s, 2),
        "startup_s": round(costs["startup"].wall_s, 2),
        "events_per_s_incl_startup": round(lines / costs["full"].wall_s),
        "events_per_s": round(lines / steady) if steady > 0 else None,
        "events_per_s_all_cores": round(lines / steady_all) if steady_all > 0 else None,
        "cores": cores,
    }


def peer_command(
    bootstrap: str,
    topics: list[str],
    events: int,
    sink_url: str,
    group: str,
    state_dir: Path,
    projected: bool = False,
) -> list[str]:
    """The Quix Streams peer's command line (its own venv, the work tree on PYTHONPATH)."""
    return [
        *(str(PEER_PYTHON), "-m", "bench.quix_peer", "--bootstrap", bootstrap),
        *("--group", group, "--events", str(events)),
        *("--sink-url", sink_url, "--state-dir", str(state_dir)),
        *(["--projected"] if projected else []),
        *topics,
    ]


def peer(
    bootstrap: str,
    topics: list[str],
    events: int,
    sink: Sink,
    directory: Path,
    projected: bool = False,
) -> dict[str, Any]:
    if not PEER_PYTHON.exists():
        return {"skipped": f"no peer venv: create it (see docs/benchmarks.md) at {PEER_PYTHON}"}
    before = sink.accepted
    with tempfile.TemporaryFile() as out:
        cost = e2e.run_measured(
            e2e.pinned(
                peer_command(
                    bootstrap,
                    topics,
                    events,
                    sink.url,
                    f"bench-peer-{events}-{projected}",
                    directory / f"quix-{events}",
                    projected,
                )
            ),
            1800,
            stdout=out,
            env={**os.environ, "PYTHONPATH": str(e2e.PROJECT)},
        )
        out.seek(0)
        reported = out.read()
    if cost.returncode != 0:
        return {"failed": cost.returncode, "stderr_tail": cost.stderr.splitlines()[-5:]}
    result = orjson.loads(reported.splitlines()[-1])
    return {
        **result,
        "delivered": sink.accepted - before,
        "wall_s": round(cost.wall_s, 2),
        "cpu_s": round(cost.cpu_s, 2),
        "peak_rss_mb": round(cost.peak_rss_mb, 1),
    }


def pinned_module(module: str, arguments: list[str], timeout_s: float) -> dict[str, Any]:
    """`python -m module arguments` pinned like the product: the JSON line it prints last, with
    its CPU seconds (all threads) and peak RSS."""
    with tempfile.TemporaryFile() as out:
        cost = e2e.run_measured(
            e2e.pinned([sys.executable, "-m", module, *arguments]), timeout_s, stdout=out
        )
        out.seek(0)
        lines = out.read().splitlines()
    if cost.returncode != 0 or not lines:
        raise RuntimeError(f"{module} failed: exit {cost.returncode}: {cost.stderr[-800:]}")
    result: dict[str, Any] = orjson.loads(lines[-1])
    return {**result, "cpu_s": round(cost.cpu_s, 2), "peak_rss_mb": round(cost.peak_rss_mb, 1)}


def raw(bootstrap: str, topics: list[str], events: int) -> dict[str, Any]:
    arguments = ["--bootstrap", bootstrap, "--group", "bench-raw", "--events", str(events)]
    return pinned_module("bench.bench_raw", [*arguments, *topics], 600)


def bare(bootstrap: str, topics: list[str], events: int, now_ms: int, group: str) -> dict[str, Any]:
    """The bare loop (bench/bench_bare.py) on the product's backlog, pinned like the product."""
    arguments = ["--bootstrap", bootstrap, "--group", group, "--events", str(events)]
    return pinned_module("bench.bench_bare", [*arguments, "--now", str(now_ms), *topics], 900)


# Partition counts of the utilization rows, with the events of each drain and how many drains,
# summed (at 4 partitions the mock broker keeps ~20k events; a drain of 30,000 over 1,000
# partitions lasts ~0.4 s, in which its start and end weigh more than in a real backlog).
UTILIZATION_RUNS = ((4, 15_000, 4), (100, 60_000, 2), (1_000, 60_000, 2))
# Drains of the product, and of the bare loop, compared by their medians (see `main`).
COMPARED_DRAINS = 3


def _runs(results: dict[str, Any], key: str) -> str:
    return " · ".join(f"{value:.1f}" for value in results["compared_drains"][key])


def table(results: dict[str, Any]) -> str:
    s, d, b, p, lat, mem, m = (
        results["stages_us"],
        results["e2e"],
        results["bare"],
        results["peer"],
        results["latency"],
        results["sink_down"],
        results["map"],
    )
    rows = [
        ("raw consume (bare Consumer)", f"{results['raw']['events_per_s']:,.0f} ev/s", ""),
        *(
            (f"decode {engine} (Decoder)", f"{s[f'decode_{engine}']:.1f} µs/ev", in_use)
            for engine in ENGINES
            for in_use in ["in use" if engine == results["decoder_in_use"] else ""]
        ),
        ("decode as the pipeline does", f"{s['decode_pipeline']:.1f} µs/ev", results["reads"]),
        ("map_event (a decoded record)", f"{s['map']:.1f} µs/ev", "what the peer runs"),
        ("map_values (its values)", f"{s['map_values']:.1f} µs/ev", "what the pipeline runs"),
        ("orjson, one call per batch", f"{s['orjson_batch']:.2f} µs/ev", ""),
        ("orjson, per event + join", f"{s['orjson_per_event']:.2f} µs/ev", ""),
        ("stages sum, best windows", f"{d['stage_sum_us']:.1f} µs/ev", "the pipeline's"),
        ("bare loop throughput", f"{b['events_per_s']:,.0f} ev/s", "consume→decode→map→orjson"),
        (
            "bare loop CPU",
            f"{b['cpu_us_per_event']:.1f} µs/ev",
            f"first record to last; median of {_runs(results, 'bare_cpu_us_per_event')}",
        ),
        ("product e2e throughput", f"{d['events_per_s']:,.0f} ev/s", "busy time"),
        ("product e2e CPU", f"{d['cpu_us_per_event']:.1f} µs/ev", "startup removed"),
        (
            "product CPU, busy window",
            f"{d['busy_cpu_us_per_event']:.1f} µs/ev",
            f"as the bare loop; median of {_runs(results, 'product_cpu_us_per_event')}",
        ),
        ("product/bare ev/s", f"{d['ratio_to_bare_events_per_s']:.2f}", "target ≥ 0.85"),
        ("product/bare CPU/ev", f"{d['ratio_to_bare_cpu']:.2f}", "target ≤ 1.2"),
        ("e2e ÷ stage best windows", f"{d['ratio_to_stages']:.2f}", "a lower bound of the stages"),
        (
            "product utilization",
            f"{d['utilization']:.2f}",
            f"{d['partitions']} partitions; harness core busy {d['harness_core_busy']}",
        ),
        *(
            (
                f"utilization, {u['partitions']:,} partitions",
                f"{u['utilization']:.2f}",
                f"target ≥ 0.9; {u['utilization_of_cpu_given']:.2f} of the time it had the "
                f"core ({u['busy_cpu_wait_s']:.2f} of {u['busy_s']:.2f} s waiting for it); "
                f"{u['events']:,} ev, {u['events_per_s']:,} ev/s; harness core busy "
                f"{u['harness_core_busy']}",
            )
            for u in results["utilization"]
        ),
        ("product peak RSS", f"{d['peak_rss_mb']:.0f} MB", f"{d['events']:,} events; < 250"),
    ]
    if "events_per_s" in p:
        rows += [
            ("Quix peer throughput", f"{p['events_per_s']:,.0f} ev/s", ""),
            ("Quix peer CPU", f"{p['cpu_us_per_event']:.1f} µs/ev", ""),
            ("Quix peer peak RSS", f"{p['peak_rss_mb']:.0f} MB", ""),
            ("product/peer ev/s", f"{results['ratios']['events_per_s']:.2f}", "target ≥ 2"),
            ("product/peer CPU/ev", f"{results['ratios']['cpu_per_event']:.2f}", "target ≤ 0.5"),
            ("product/peer RSS", f"{results['ratios']['peak_rss']:.2f}", "target ≤ 0.5"),
            (
                "ceiling of product/peer ev/s",
                f"{results['ratios']['ceiling_events_per_s']:.2f}",
                "peer CPU ÷ bare loop CPU",
            ),
        ]
    else:
        rows.append(("Quix peer", "not run", str(p)[:60]))
    projected = results.get("peer_projected", {})
    if "events_per_s" in projected and "events_per_s" in p:
        rows += [
            ("Quix peer, projected", f"{projected['events_per_s']:,.0f} ev/s", "decoding as ours"),
            (
                "product/that peer ev/s",
                f"{d['events_per_s'] / projected['events_per_s']:.2f}",
                f"CPU/ev {d['cpu_us_per_event'] / projected['cpu_us_per_event']:.2f}",
            ),
        ]
    rows += [
        (
            "latency p50 / p99",
            f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} ms",
            f"{lat['rate_events_per_s']} ev/s steady",
        ),
        (
            "RSS while sink down",
            f"{mem['rss_mb_while_down_min']:.0f}–{mem['rss_mb_while_down_max']:.0f} MB",
            f"{mem['down_s']:.0f} s of 503",
        ),
        ("map command, one core", f"{m['events_per_s']:,} ev/s", "startup removed"),
        (
            "map command, all cores",
            f"{m['events_per_s_all_cores']:,} ev/s",
            f"target ≥ 30k; {m['cores']} cores, a worker each",
        ),
    ]
    width = max(len(r[0]) for r in rows) + 2
    return "\n".join(f"{a:<{width}}{b:>18}   {c}" for a, b, c in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "200000")))
    parser.add_argument("--profile", action="store_true", help="cProfile a Pipeline run instead")
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    now_ms = int(time.time() * 1000)
    # This process (sink, producers) and the broker it spawns keep off the measured core.
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    pool = e2e.purchase_pool(POOL, now_ms)
    values = e2e.encode_pool(pool)
    results: dict[str, Any] = {"machine": machine(), "backlog": "valid purchases, 3 items"}
    results["avro_bytes_per_event"] = round(sum(map(len, values)) / len(values))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker, Sink() as sink:
        directory = Path(tmp)
        bootstrap = broker.bootstrap_servers
        topics = e2e.backlog_topics("bench", args.events)
        log(f"producing {args.events:,} events over {len(topics)} topics")
        results["producer_events_per_s"] = round(
            e2e.produce_backlog(bootstrap, topics, args.events, values)
        )
        if args.profile:
            return profile(bootstrap, topics, sink)
        log("stages in isolation")
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {0})
        decoder = Decoder(SchemaSettings())
        results["decoder_in_use"] = decoder.engine
        compiled = AppConfig.model_validate({}).compile()
        results["reads"] = (
            "values read from the bytes"
            if pipeline_reader(decoder, compiled)[1]
            else "whole records"
        )
        results["stages_us"] = stages(values, now_ms)
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
        log("raw consume")
        results["raw"] = raw(bootstrap, topics, args.events)
        log("product: startup cost (1000 events)")
        small = e2e.backlog_topics("bench-small", 1000)
        e2e.produce_backlog(bootstrap, small, 1000, values)
        config = e2e.consumer_config(bootstrap, sink.url, small, "bench-startup")
        startup = e2e.drain(e2e.write_config(directory, "startup", config), 1000, sink, 300)
        # The product and the bare loop alternated, three times each (each drain in a group of its
        # own): times on a shared VM move by tens of percent from one minute to the next (the
        # bare loop's CPU per event by up to 1.6x between its own drains), so each side is
        # represented by its median drain (by CPU per event), not one drain at a time of the
        # machine's choosing.
        drains, bare_loops = [], []
        for attempt in range(COMPARED_DRAINS):
            log(f"product: drain ({attempt + 1} of {COMPARED_DRAINS})")
            group = f"bench-e2e-{attempt}"
            config = e2e.consumer_config(bootstrap, sink.url, topics, group)
            drains.append(
                e2e.drain(e2e.write_config(directory, group, config), args.events, sink, 1800)
            )
            log(f"bare loop on the same backlog ({attempt + 1} of {COMPARED_DRAINS})")
            bare_loops.append(bare(bootstrap, topics, args.events, now_ms, f"bench-bare-{attempt}"))
        drained = sorted(drains, key=lambda run: run["busy_cpu_s"])[COMPARED_DRAINS // 2]
        results["bare"] = bare_loop = sorted(bare_loops, key=lambda run: run["cpu_us_per_event"])[
            COMPARED_DRAINS // 2
        ]
        results["compared_drains"] = {
            "product_cpu_us_per_event": [
                round(run["busy_cpu_s"] / args.events * 1e6, 1) for run in drains
            ],
            "bare_cpu_us_per_event": [run["cpu_us_per_event"] for run in bare_loops],
        }
        stage_sum = results["stages_us"]["decode_pipeline"]
        stage_sum += results["stages_us"]["map_values"] + results["stages_us"]["orjson_batch"]
        cpu_us = (drained["cpu_s"] - startup["cpu_s"]) / (args.events - 1000) * 1e6
        # Like for like with the bare loop: first record to last commit, process CPU.
        busy_cpu_us = drained["busy_cpu_s"] / args.events * 1e6
        drained.update(
            partitions=len(topics) * e2e.PARTITIONS,
            busy_cpu_us_per_event=round(busy_cpu_us, 1),
            ratio_to_bare_events_per_s=round(
                drained["events_per_s_busy"] / bare_loop["events_per_s"], 2
            ),
            ratio_to_bare_cpu=round(busy_cpu_us / bare_loop["cpu_us_per_event"], 2),
            startup_cpu_s=startup["cpu_s"],
            startup_wall_s=startup["wall_s"],
            cpu_us_per_event=round(cpu_us, 1),
            events_per_s=drained["events_per_s_busy"],
            stage_sum_us=round(stage_sum, 1),
            ratio_to_stages=round(cpu_us / stage_sum, 2),
        )
        results["e2e"] = drained
        log("utilization at 4, 100 and 1,000 partitions")
        # On a broker of their own: the mock broker holding the large backlog answers fetches
        # slower than the product consumes (its core busy), which the product's utilization
        # would then measure.
        with EmbeddedBroker() as fresh:
            results["utilization"] = [
                e2e.utilization(
                    fresh.bootstrap_servers, directory, sink, values, partitions, events, drains
                )
                for partitions, events, drains in UTILIZATION_RUNS
            ]
        peer_startup: dict[str, Any] = {}
        if not args.skip_peer:
            log("Quix Streams peer: startup cost (1000 events), drain")
            peer_startup = peer(bootstrap, small, 1000, sink, directory)
            results["peer"] = peer(bootstrap, topics, args.events, sink, directory)
        else:
            results["peer"] = {"skipped": "--skip-peer"}
        if "cpu_s" in peer_startup:
            log("Quix Streams peer, decoding as the product does")
            projected = peer(bootstrap, topics, args.events, sink, directory, projected=True)
            if "cpu_s" in projected:
                projected["cpu_us_per_event"] = round(
                    (projected["cpu_s"] - peer_startup["cpu_s"]) / (args.events - 1000) * 1e6, 1
                )
            results["peer_projected"] = projected
        if "cpu_s" in results["peer"] and "cpu_s" in peer_startup:
            p = results["peer"]
            # Start-up removed as for the product: the same 1000-event run's CPU.
            p["startup_cpu_s"] = peer_startup["cpu_s"]
            p["cpu_us_per_event"] = round(
                (p["cpu_s"] - peer_startup["cpu_s"]) / (args.events - 1000) * 1e6, 1
            )
            results["ratios"] = {
                "events_per_s": round(drained["events_per_s"] / p["events_per_s"], 2),
                "cpu_per_event": round(cpu_us / p["cpu_us_per_event"], 2),
                "peak_rss": round(drained["peak_rss_mb"] / p["peak_rss_mb"], 2),
                # Were everything of ours but consume, decode, map and serialize free, our
                # CPU/event would be the bare loop's, and the peer's ÷ that is the best
                # events/s ratio this run allows.
                "ceiling_events_per_s": round(
                    p["cpu_us_per_event"] / bare_loop["cpu_us_per_event"], 2
                ),
            }
        log("latency at a steady rate")
        config = e2e.consumer_config(bootstrap, sink.url, ["bench-latency"], "bench-latency")
        results["latency"] = e2e.latency(
            bootstrap,
            e2e.write_config(directory, "latency", config),
            "bench-latency",
            sink,
            pool,
            rate=int(os.environ.get("BENCH_LATENCY_RATE", "1000")),
            duration_s=10,
        )
        log("memory while the sink is down")
        config = e2e.consumer_config(bootstrap, sink.url, topics, "bench-down")
        results["sink_down"] = e2e.sink_down(e2e.write_config(directory, "down", config), sink, 15)
        log("map command")
        results["map"] = map_command(pool, 100_000, now_ms, directory)
    results["bench_wall_s"] = round(time.monotonic() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'latest.json'} ({results['bench_wall_s']} s)")
    return 0


def profile(bootstrap: str, topics: list[str], sink: Sink) -> int:
    """cProfile of `Pipeline.run(until_caught_up=True)` in this process over the backlog."""
    from consumer.live.pipeline import Pipeline

    raw_config = e2e.consumer_config(bootstrap, sink.url, topics, "bench-profile")
    config = AppConfig.model_validate(yaml.safe_load(yaml.safe_dump(raw_config)))
    pipeline = Pipeline(config)
    profiler = cProfile.Profile()
    profiler.enable()
    pipeline.run(until_caught_up=True)
    profiler.disable()
    print(pipeline.summary.as_dict())
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(30)
        print(text.getvalue())
    return 0


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
