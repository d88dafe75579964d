"""Instructions per event, counted by valgrind: the comparisons of `make bench` without the noise
of a shared machine (a neighbour can slow a run down; it cannot change what the run executes).

    .venv/bin/python -m bench.bench_instructions [--events 21000]   # or: make bench-instructions
    .venv/bin/python -m bench.bench_instructions --map-only [--map-lines 20000]

Runs under `valgrind --tool=cachegrind` (about 50× slower, so a small backlog): the product end
to end (`capi-consumer run --until-caught-up`, every thread), the pipeline's stages alone
(decode as the pipeline does, `map_values`, orjson), and the Quix Streams peer both ways. Each
is run on `--events` and on 1,000 events, and the difference ÷ the difference in events is the
cost per event with start-up removed. Prints a table; writes bench/results/instructions.json.

`capi-consumer map` is counted the same way per line (`--map-lines` purchase lines minus one
line, every process: the parent and its workers) under callgrind, which zeroes a forked worker's
counts as it starts (`--zero-before=PyOS_AfterFork_Child`): valgrind gives a forked child the
counts its parent had at the fork, so summing every process's total counts the parent's start-up
(~1.1G instructions, interpreted) once more per worker, ~114k per line at 20,000 lines and 2.
Time and instructions are different currencies: a run with poor cache behaviour (the peer's
large heap) takes more time per instruction, so this is a floor for the ratios in time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench import bench_e2e as e2e
from bench.run import PEER_PYTHON, RESULTS, peer_command, pipeline_reader
from bench.sink import Sink
from consumer.devtools.embedded_broker import EmbeddedBroker

_SMALL = 1_000
# A fixed string hash seed in every counted process: the same dict probes, run after run (a
# random seed moved the counts by up to ~2k per event).
_SAME_HASHES = {"PYTHONHASHSEED": "0"}
_VALGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
# Every process, a forked one counted from its own start (see the docstring).
_CALLGRIND = [
    *("valgrind", "--tool=callgrind", "--trace-children=yes"),
    "--zero-before=PyOS_AfterFork_Child",
]


def instructions(command: list[str], env: dict[str, str] | None = None) -> int:
    """Instructions the command executed (all its threads), by valgrind."""
    done = subprocess.run(
        [*_VALGRIND, *command], env=env, capture_output=True, text=True, timeout=3600, check=False
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{command[0]} failed under valgrind: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def instructions_all_processes(
    command: list[str], stdin: Path, env: dict[str, str], directory: Path
) -> int:
    """Instructions of the command and of every process it starts, forks counted from the fork."""
    out = directory / "callgrind"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    with stdin.open("rb") as source:
        done = subprocess.run(
            [*_CALLGRIND, f"--callgrind-out-file={out}/%p", f"--log-file={out}/%p.log", *command],
            stdin=source,
            stdout=subprocess.DEVNULL,
            env=env,
            timeout=3600,
            check=False,
        )
    # `summary:` is what was counted since the last zeroing; `totals:` keeps the inherited part.
    found = [
        int(line.split()[1])
        for path in out.iterdir()
        if not path.name.endswith(".log")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.startswith("summary:")
    ]
    if done.returncode != 0 or not found:
        raise RuntimeError(f"{command[0]} failed under valgrind (exit {done.returncode}) in {out}")
    return sum(found)


def map_per_line(lines: int, now_ms: int, directory: Path) -> dict[str, Any]:
    """`capi-consumer map` on `lines` valid purchases (full identity) and on one: per line."""
    # The lines of bench/run.py's map_command: the purchase pool, round-robin.
    encoded = [orjson.dumps(event) for event in e2e.purchase_pool(5_000, now_ms)]
    counts = {}
    for size in (1, lines):
        path = directory / f"map-{size}.jsonl"
        with path.open("wb") as file:
            for index in range(size):
                file.write(encoded[index % len(encoded)] + b"\n")
        log(f"{size:,} lines: capi-consumer map")
        counts[size] = instructions_all_processes(
            [e2e.CLI, "map", "--now", str(now_ms)],
            path,
            {**e2e.cli_env(), **_SAME_HASHES},
            directory,
        )
    return {
        "map_lines": lines,
        "map_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "map_instructions_per_line": round(per_event(counts)),
    }


def per_event(counts: dict[int, int]) -> float:
    (small, few), (large, many) = sorted(counts.items())
    return (many - few) / (large - small)


def stages_only(events: int) -> None:
    """The pipeline's stages over `events` backlog records, 1000 at a time (run under valgrind)."""
    from consumer.avro.decoding import Decoder
    from consumer.cli.startup import tune_memory
    from consumer.config import AppConfig, SchemaSettings
    from transforms import Mapped, map_values

    now_ms = int(time.time() * 1000)
    values = e2e.encode_pool(e2e.purchase_pool(5_000, now_ms))
    tune_memory()
    compiled = AppConfig.model_validate({}).compile()
    read, _ = pipeline_reader(Decoder(SchemaSettings()), compiled)
    for start in range(0, events, 1000):
        batch = [values[(start + index) % len(values)] for index in range(1000)]
        outcomes = [map_values(event, compiled, now_ms) for event in read(batch)]
        b",".join([orjson.dumps(o.event) for o in outcomes if isinstance(o, Mapped)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=21_000)
    parser.add_argument("--map-lines", type=int, default=20_000)
    parser.add_argument(
        "--map-only", action="store_true", help="count only `capi-consumer map` per line"
    )
    parser.add_argument("--stages-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages_only:
        stages_only(args.stages_only)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count", file=sys.stderr)
        return 1
    now_ms = int(time.time() * 1000)
    if args.map_only:
        with tempfile.TemporaryDirectory() as tmp:
            map_row = map_per_line(args.map_lines, now_ms, Path(tmp))
        # The other rows of an earlier full run are kept.
        path = RESULTS / "instructions.json"
        earlier = orjson.loads(path.read_bytes()) if path.exists() else {}
        write_results({**earlier, **map_row})
        return 0
    values = e2e.encode_pool(e2e.purchase_pool(5_000, now_ms))
    sizes = (_SMALL, args.events)
    jobs = ["product", *(["peer", "peer_projected"] if PEER_PYTHON.exists() else [])]
    counts: dict[str, dict[int, int]] = {job: {} for job in ["stages", *jobs]}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker, Sink() as sink:
        directory = Path(tmp)
        for events in sizes:
            log(f"{events:,} events: the pipeline's stages")
            counts["stages"][events] = instructions(
                [sys.executable, "-m", "bench.bench_instructions", "--stages-only", str(events)],
                env={**os.environ, "PYTHONPATH": str(e2e.PROJECT), **_SAME_HASHES},
            )
            for job in jobs:
                log(f"{events:,} events: {job}")
                topics = e2e.backlog_topics(f"instructions-{job}-{events}", events)
                e2e.produce_backlog(broker.bootstrap_servers, topics, events, values)
                before = sink.accepted
                counts[job][events] = instructions(
                    command(job, broker.bootstrap_servers, topics, events, sink, directory),
                    env={**e2e.cli_env(), "PYTHONPATH": str(e2e.PROJECT), **_SAME_HASHES},
                )
                # At valgrind's pace a request may time out and be sent again: never fewer.
                if sink.accepted - before < events:
                    raise RuntimeError(f"{job} delivered {sink.accepted - before} of {events}")
        map_row = map_per_line(args.map_lines, now_ms, directory)
    per = {job: round(per_event(found)) for job, found in counts.items() if len(found) == 2}
    results: dict[str, Any] = {"events": args.events, "instructions_per_event": per, **map_row}
    if "product" in per:
        results["e2e_to_stages"] = round(per["product"] / per["stages"], 2)
    for peer in ("peer", "peer_projected"):
        if peer in per:
            results[f"product_to_{peer}"] = round(per["product"] / per[peer], 2)
    write_results(results)
    return 0


def write_results(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "instructions.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    for job, count in results.get("instructions_per_event", {}).items():
        print(f"{job:32}{count:>12,} instructions/event")
    for name in ("e2e_to_stages", "product_to_peer", "product_to_peer_projected"):
        if name in results:
            print(f"{name:32}{results[name]:>12.2f}")
    if "map_instructions_per_line" in results:
        name = f"map ({results['map_lines']:,} lines)"
        print(f"{name:32}{results['map_instructions_per_line']:>12,} instructions/line")
    print(f"\nwritten: {RESULTS / 'instructions.json'}")


def command(
    job: str, bootstrap: str, topics: list[str], events: int, sink: Sink, directory: Path
) -> list[str]:
    if job == "product":
        raw = e2e.consumer_config(bootstrap, sink.url, topics, f"instructions-{events}")
        config = e2e.write_config(directory, f"{job}-{events}", raw)
        return [e2e.CLI, "run", "--config", str(config), "--until-caught-up"]
    return peer_command(
        bootstrap,
        topics,
        events,
        sink.url,
        f"instructions-{job}-{events}",
        directory / f"{job}-{events}",
        projected=job == "peer_projected",
    )


def log(message: str) -> None:
    print(f"[instructions] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
