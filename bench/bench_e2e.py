"""The product end to end, as users run it: `capi-consumer run` in a child process pinned to one
core, against the embedded broker and the bench sink. Also the shared pieces of `bench/`: the
backlog producer, consumer configs, and measuring a child's wall time, CPU time and peak RSS.

The backlog is valid CA purchases (3 items, full identity, ~1 KB of Avro each) from
`consumer.devtools.samples`, encoded once and produced round-robin over many topics with lz4 so
that no partition of the mock broker exceeds its ~5 MiB retention (checked: every low watermark
is 0).
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.sink import Sink
from consumer.avro.encoder import Encoder
from consumer.config import AppConfig
from consumer.devtools.samples import generate_events

PROJECT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("capi-consumer"))
PIXEL = "pixel-bench"
API_KEY = "bench-key"
# Records go round-robin to the 4 partitions a topic is created with: 3,750 x ~1 KB per
# partition fits its ~5 MiB even uncompressed.
EVENTS_PER_TOPIC = 15_000
PARTITIONS = 4
_PRODUCER = {
    "compression.type": "lz4",
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
}


@dataclass
class ProcessCost:
    """What one child process cost, from `os.wait4` (its own rusage, not the group's)."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    stderr: str


# The measured process runs on core 0; the broker, the sink and this process on core 1.
HARNESS_CORE = 1


def pinned(command: Sequence[str]) -> list[str]:
    """`command` on core 0 when `taskset` exists (the orchestrator keeps to core 1)."""
    return ["taskset", "-c", "0", *command] if shutil.which("taskset") else list(command)


def run_measured(
    command: Sequence[str],
    timeout_s: float,
    *,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    while_running: Callable[[int], bool] | None = None,
) -> ProcessCost:
    """Run `command` to completion (SIGTERM to its own PID past `timeout_s`).

    `while_running(pid)` is called every 0.2 s; returning True sends SIGTERM (a graceful stop).
    Peak RSS is the child's VmHWM, sampled every 0.2 s: not `ru_maxrss`, which keeps the high
    mark of the memory the child shared with this (large) process before its exec.
    """
    # The sink answers from a thread of this process: a collection of this process's heap (the
    # event pool, results) holds the GIL for tens of ms, the product waits for its answers, and
    # its utilization measured the harness (0.17-0.75 in `bench.run` against 0.99 alone).
    # What exists now is kept out of every collection while the child runs.
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryFile() as errors:
        began = time.monotonic()
        process = subprocess.Popen(
            list(command), stdin=stdin, stdout=stdout, stderr=errors, env=env, cwd=PROJECT
        )
        deadline = began + timeout_s
        signalled = False
        peak_mb = 0.0
        while True:
            peak_mb = max(peak_mb, _status_mb(process.pid, "VmHWM:") or 0.0)
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if not signalled and (
                now > deadline or (while_running is not None and while_running(process.pid))
            ):
                process.send_signal(signal.SIGTERM)
                signalled = True
                deadline = now + 30
            elif signalled and now > deadline:
                process.kill()
            time.sleep(0.2)
        wall = time.monotonic() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        text = errors.read().decode(errors="replace")
    return ProcessCost(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=peak_mb or usage.ru_maxrss / 1024,
        returncode=process.returncode,
        stderr=text,
    )


def rss_mb(pid: int) -> float | None:
    return _status_mb(pid, "VmRSS:")


def _status_mb(pid: int, field: str) -> float | None:
    """A memory figure of /proc/<pid>/status (VmRSS:, VmHWM:) in MB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --- the backlog -----------------------------------------------------------------------------


def purchase_pool(size: int, now_ms: int) -> list[dict[str, Any]]:
    """`size` valid purchases (3 items, full identity) with timestamps in the last hour."""
    pool: list[dict[str, Any]] = []
    seed = 0
    while len(pool) < size:
        events = generate_events(size * 5, seed=seed, now_ms=now_ms)
        pool += [e for e in events if e["event_name"] == "purchase"]
        seed += 1
    return pool[:size]


def base_config() -> AppConfig:
    return AppConfig.model_validate({})


def encode_pool(pool: list[dict[str, Any]]) -> list[bytes]:
    """Record values as the product reads them (plain Avro: no registry configured)."""
    encoder = Encoder(base_config().schema_settings)
    return [encoder.encode(event, "bench") for event in pool]


def backlog_topics(prefix: str, events: int) -> list[str]:
    count = max(1, -(-events // EVENTS_PER_TOPIC))
    return [f"{prefix}-{index:03d}" for index in range(count)]


def partitioned_topics(prefix: str, partitions: int) -> list[str]:
    """Topics holding `partitions` partitions in all (the mock broker gives each 4)."""
    return [f"{prefix}-{index:03d}" for index in range(max(1, partitions // PARTITIONS))]


def utilization(
    bootstrap: str,
    directory: Path,
    sink: Sink,
    values: list[bytes],
    partitions: int,
    events: int,
    drains: int,
) -> dict[str, Any]:
    """How busy `capi-consumer run --until-caught-up` is while a backlog waits: `drains` drains
    of `events` over `partitions` partitions, each from its first record to its last commit;
    their process CPU seconds (all threads) ÷ their wall seconds, summed over the drains."""
    runs = []
    for index in range(drains):
        topics = partitioned_topics(f"bench-util-{partitions}-{index}", partitions)
        produce_backlog(bootstrap, topics, events, values)
        config = consumer_config(bootstrap, sink.url, topics, f"bench-util-{partitions}-{index}")
        runs.append(drain(write_config(directory, f"util-{partitions}", config), events, sink, 600))
    busy_s = sum(run["busy_s"] for run in runs)
    busy_cpu_s = sum(run["busy_cpu_s"] for run in runs)
    # Time the consumer's main thread was ready to run while neighbours held the core: the
    # machine's load, not the consumer's idling (the figure a quiet, dedicated core gives).
    cpu_wait_s = sum(run["busy_cpu_wait_s"] or 0.0 for run in runs)
    return {
        "partitions": partitions,
        "events": events * drains,
        "drains": drains,
        "busy_s": round(busy_s, 3),
        "busy_cpu_s": round(busy_cpu_s, 3),
        "busy_cpu_wait_s": round(cpu_wait_s, 3),
        "utilization": round(busy_cpu_s / busy_s, 3),
        "utilization_of_cpu_given": round(busy_cpu_s / max(busy_s - cpu_wait_s, 1e-9), 3),
        "load_average": round(os.getloadavg()[0], 2),
        "harness_core_busy": max((run["harness_core_busy"] or 0.0 for run in runs), default=None),
        "events_per_s": round(events * drains / busy_s),
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
    }


def produce_backlog(bootstrap: str, topics: list[str], events: int, values: list[bytes]) -> float:
    """Produce `events` records cycling over `values`; returns events/s of the producer."""
    producer = Producer({"bootstrap.servers": bootstrap, **_PRODUCER})
    failures = 0

    def on_delivery(error: object, _message: object) -> None:
        nonlocal failures
        if error is not None:
            failures += 1

    began = time.monotonic()
    per_topic = -(-events // len(topics))
    for index in range(events):
        topic = topics[index // per_topic]
        while True:
            try:
                producer.produce(
                    topic,
                    values[index % len(values)],
                    partition=index % PARTITIONS,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.05)
        if index % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) or failures:
        raise RuntimeError(f"backlog not fully acknowledged ({failures} failed)")
    rate = events / (time.monotonic() - began)
    lost = sum(low for low, _ in watermarks(bootstrap, topics).values())
    if lost:
        raise RuntimeError(f"the mock broker dropped {lost} records: lower EVENTS_PER_TOPIC")
    return rate


def watermarks(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe"})
    try:
        marks = {}
        for topic in topics:
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                tp = TopicPartition(topic, partition)
                marks[(topic, partition)] = consumer.get_watermark_offsets(tp, timeout=10)
        return marks
    finally:
        consumer.close()


# --- the product -----------------------------------------------------------------------------


def consumer_config(
    bootstrap: str, sink_url: str, topics: list[str], group: str, **sections: Any
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group, "topics": topics},
        "capi": {"base_url": sink_url, "pixel_id": PIXEL, "api_key": API_KEY},
        "delivery": {"retry": {"initial_backoff_s": 0.05, "max_backoff_s": 1.0}},
        "dlq": {"topic": "bench-dlq"},
        "observability": {"enabled": False, "log_level": "info", "log_format": "json"},
    }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return raw


def write_config(directory: Path, name: str, raw: dict[str, Any]) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CAPI_CONSUMER_")}


def run_summary(stderr: str) -> dict[str, Any]:
    """The `run finished` log record of the product (JSON logs)."""
    for line in reversed(stderr.splitlines()):
        if '"run finished"' in line:
            try:
                record: dict[str, Any] = orjson.loads(line)
                return record
            except orjson.JSONDecodeError:
                break
    return {}


def core_times(core: int) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU since boot, from /proc/stat ((0, 0) elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                if line.startswith(f"cpu{core} "):
                    fields = [int(field) for field in line.split()[1:]]
                    idle = fields[3] + fields[4]  # idle + iowait
                    return sum(fields) - idle, sum(fields)
    except OSError:
        pass
    return 0, 0


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 2) if total > 0 else None


def drain(config_path: Path, events: int, sink: Sink, timeout_s: float) -> dict[str, Any]:
    """`capi-consumer run --until-caught-up` over a backlog of `events`: rate, CPU, RSS, and
    how busy the harness's core (the broker, the sink) was meanwhile: a product that waits on a
    saturated broker idles for the harness's sake, not its own."""
    accepted_before = sink.accepted
    harness_before = core_times(HARNESS_CORE)
    cost = run_measured(
        pinned([CLI, "run", "--config", str(config_path), "--until-caught-up"]),
        timeout_s,
        env=cli_env(),
    )
    harness_busy = busy_share(harness_before, core_times(HARNESS_CORE))
    summary = run_summary(cost.stderr)
    delivered = sink.accepted - accepted_before
    if cost.returncode != 0 or delivered < events:
        tail = "\n".join(cost.stderr.splitlines()[-5:])
        raise RuntimeError(f"drain failed: exit {cost.returncode}, {delivered}/{events}: {tail}")
    return {
        "events": events,
        "delivered": delivered,
        "wall_s": round(cost.wall_s, 2),
        "cpu_s": round(cost.cpu_s, 2),
        "peak_rss_mb": round(cost.peak_rss_mb, 1),
        "events_per_s_busy": summary.get("events_per_s"),
        # First record → last commit: wall, process CPU (all threads), and their ratio.
        "busy_s": summary.get("busy_s"),
        "busy_cpu_s": summary.get("busy_cpu_s"),
        "utilization": summary.get("utilization"),
        "busy_cpu_wait_s": summary.get("busy_cpu_wait_s"),
        "harness_core_busy": harness_busy,
    }


def latency(
    bootstrap: str,
    config_path: Path,
    topic: str,
    sink: Sink,
    pool: list[dict[str, Any]],
    rate: int,
    duration_s: float,
) -> dict[str, Any]:
    """p50/p99 of produce time → accepted by the sink, at `rate` events/s for `duration_s`."""
    encoder = Encoder(base_config().schema_settings)
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": "lz4", "linger.ms": 5})

    def send(event_id: str) -> None:
        event = pool[len(produced) % len(pool)]
        context = {**event["context"], "event_id": event_id}
        context["event_timestamp"] = int(time.time() * 1000)
        produced[event_id] = time.time()
        producer.produce(topic, encoder.encode({**event, "context": context}, topic))
        producer.poll(0)

    produced: dict[str, float] = {}
    send("warm-up")  # creates the topic before the consumer subscribes
    producer.flush(10)
    sink.record_arrivals = True
    sink.arrivals.clear()
    result: dict[str, Any] = {}

    def steady_input(pid: int) -> bool:
        del pid
        if "warm-up" not in sink.arrivals:
            return False  # the consumer is still joining the group
        if "rate" not in result:
            result["rate"] = rate
            threading.Thread(target=produce_steadily, daemon=True).start()
        return "done" in result

    def produce_steadily() -> None:
        began = time.monotonic()
        total = int(rate * duration_s)
        for index in range(total):
            wait = began + index / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            send(f"lat-{index}")
        producer.flush(10)
        ids = [f"lat-{index}" for index in range(total)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(i in sink.arrivals for i in ids[-100:]):
            time.sleep(0.05)
        result["done"] = True

    cost = run_measured(
        pinned([CLI, "run", "--config", str(config_path)]),
        duration_s + 120,
        env=cli_env(),
        while_running=steady_input,
    )
    sink.record_arrivals = False
    delays = sorted(
        (sink.arrivals[i] - at) * 1000
        for i, at in produced.items()
        if i.startswith("lat-") and i in sink.arrivals
    )
    sent = len(produced) - 1
    if not delays:
        raise RuntimeError(f"no latency sample (exit {cost.returncode})")
    return {
        "rate_events_per_s": rate,
        "duration_s": duration_s,
        "sent": sent,
        "accepted": len(delays),
        "p50_ms": round(statistics.median(delays), 1),
        "p99_ms": round(delays[min(len(delays) - 1, int(len(delays) * 0.99))], 1),
        "max_ms": round(delays[-1], 1),
    }


def sink_down(config_path: Path, sink: Sink, down_s: float) -> dict[str, Any]:
    """RSS over time while the sink answers 503 with a backlog waiting, then after it recovers."""
    samples: list[tuple[float, float]] = []
    state: dict[str, float] = {}

    def watch(pid: int) -> bool:
        if sink.refused == refused_before:
            return False  # the down period starts at the first refused request
        now = time.monotonic()
        state.setdefault("began", now)
        elapsed = now - state["began"]
        rss = rss_mb(pid)
        if rss:
            samples.append((round(elapsed, 1), round(rss, 1)))
        if elapsed >= down_s and sink.down:
            sink.down = False
            state["accepted_at_recovery"] = sink.accepted
            state["recovered_at"] = elapsed
        # Stop once deliveries resumed for a while (or 30 s after recovery at most).
        recovered = state.get("recovered_at")
        return recovered is not None and (
            sink.accepted - state["accepted_at_recovery"] >= 50_000 or elapsed > recovered + 30
        )

    refused_before = sink.refused
    sink.down = True
    try:
        cost = run_measured(
            pinned([CLI, "run", "--config", str(config_path)]),
            down_s + 120,
            env=cli_env(),
            while_running=watch,
        )
    finally:
        sink.down = False
    if "recovered_at" not in state:
        raise RuntimeError(
            f"sink-down run ended early (exit {cost.returncode}): {cost.stderr[-800:]}"
        )
    down = [rss for at, rss in samples if at <= down_s]
    settled = [rss for at, rss in samples if 5 <= at <= down_s]
    return {
        "down_s": down_s,
        "refused_requests": sink.refused - refused_before,
        "rss_mb_while_down_min": min(settled or down),
        "rss_mb_while_down_max": max(settled or down),
        "rss_mb_at_down_end": down[-1] if down else None,
        "rss_mb_peak": round(cost.peak_rss_mb, 1),
        "delivered_after_recovery": sink.accepted - int(state.get("accepted_at_recovery", 0)),
        "exit_code": cost.returncode,
        "recovered": "recovered_at" in state,
        "samples": samples,
    }
