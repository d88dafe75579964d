"""`capi-consumer demo` (`make demo`): the main job end to end on this machine.

Starts an embedded Kafka-protocol broker (librdkafka's mock cluster, in a child process) and the
local CAPI sandbox, produces realistic sample events (a few of them invalid on purpose), runs the
real consumer until the topic is drained and committed, prints what happened, and stops
everything it started.

With `--serve` (`make demo-serve`) it keeps running instead: a trickle of sample events (a few
invalid, a few refused by the sandbox), the consumer with the events inspector enabled, and the
URLs of the inspector and of the sandbox's page, until Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from consumer.cli.produce import produce_events
from consumer.cli.progress import summary_lines
from consumer.config import AppConfig
from consumer.devtools.embedded_broker import EmbeddedBroker
from consumer.devtools.samples import generate_events
from consumer.live.pipeline import Pipeline
from consumer.observability.logs import setup_logging
from consumer.sandbox.server import SandboxThread
from consumer.sandbox.settings import SandboxSettings

# `demo --serve`: sample events produced per second, and every POISON_EVERY-th second one of
# them carries an id the sandbox refuses (a `rejected_by_api` in the inspector).
TRICKLE_PER_S = 5
POISON_EVERY = 10
_POISON_IDS = tuple(f"demo-poison-{tick}" for tick in range(0, 100_000, POISON_EVERY))

DEMO_PIXEL = "demo-pixel"
DEMO_KEY = "demo-key"
TOPIC = "ca-events"


def demo_config(bootstrap: str, sandbox_url: str) -> dict[str, Any]:
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": "capi-demo",
            "topics": [TOPIC],
        },
        "capi": {"base_url": sandbox_url, "pixel_id": DEMO_PIXEL, "api_key": DEMO_KEY},
        "batch": {"linger_ms": 200},
        "dlq": {"topic": "capi-demo-dlq"},
        "observability": {"enabled": False, "log_level": "warning"},
    }


def _print_summary(summary: dict[str, Any], stats: dict[str, Any], dlq_topic: str) -> None:
    lines = summary_lines(summary, "openai-capi-consumer demo")
    rule = lines[0]
    print("\n".join(lines[:-1]))
    print(
        f"sandbox (a strict local OpenAI CAPI): {stats['stored']} events stored, "
        f"{stats['duplicates']} duplicates, {sum(stats['rejected'].values())} requests rejected"
    )
    print(f"dead-letter topic '{dlq_topic}': every invalid event, with its reason")
    print(lines[-1])
    print(rule)


def command(args: argparse.Namespace) -> int:
    if args.serve:
        return serve(args.port)
    setup_logging("warning", "text")
    log = logging.getLogger("consumer.demo")
    now_ms = int(time.time() * 1000)
    events = generate_events(args.events, seed=7, now_ms=now_ms, invalid_ratio=0.05)
    sandbox_settings = SandboxSettings.model_validate(
        {"pixels": [{"pixel_id": DEMO_PIXEL, "api_keys": [DEMO_KEY]}]}
    )
    print("starting the embedded Kafka broker and the CAPI sandbox ...", flush=True)
    with EmbeddedBroker() as broker, SandboxThread(sandbox_settings) as sandbox:
        raw = demo_config(broker.bootstrap_servers, sandbox.url)
        config = AppConfig.model_validate(raw)
        report = produce_events(config, TOPIC, events)
        print(
            f"produced {report.produced} sample events to '{TOPIC}' at {broker.bootstrap_servers}"
        )
        print(f"running the consumer against the sandbox at {sandbox.url} ...", flush=True)
        pipeline = Pipeline(config)
        reason = pipeline.run(until_caught_up=True)
        if reason != "caught_up":
            log.error("the demo run ended early", extra={"reason": reason})
            return 1
        _print_summary(
            pipeline.summary.as_dict(), sandbox.call(lambda state: state.stats()), config.dlq.topic
        )
    return 0


def _trickle(config: AppConfig, stopping: threading.Event) -> None:
    """Produce a few sample events every second until `stopping` is set."""
    log = logging.getLogger("consumer.demo")
    tick = 0
    while not stopping.wait(0 if tick == 0 else 1.0):
        now_ms = int(time.time() * 1000)
        events = generate_events(TRICKLE_PER_S, seed=tick, now_ms=now_ms, invalid_ratio=0.1)
        if tick % POISON_EVERY == 0 and tick // POISON_EVERY < len(_POISON_IDS):
            events[0]["context"]["event_id"] = _POISON_IDS[tick // POISON_EVERY]
        try:
            produce_events(config, TOPIC, events)
        except Exception as exc:  # the broker is stopping: the loop ends with `stopping`
            log.warning("demo producer: %s", type(exc).__name__)
        tick += 1


def serve(port: int) -> int:
    """Broker, sandbox, consumer (inspector on) and a trickle of events until Ctrl-C/SIGTERM."""
    from consumer.cli.run import start_health

    setup_logging("warning", "text")
    stopping = threading.Event()
    pipeline: Pipeline | None = None

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        if pipeline is not None:
            pipeline.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sandbox_settings = SandboxSettings.model_validate(
        {
            "pixels": [
                {
                    "pixel_id": DEMO_PIXEL,
                    "api_keys": [DEMO_KEY],
                    "faults": {"poison_ids": list(_POISON_IDS)},
                }
            ]
        }
    )
    print("starting the embedded Kafka broker and the CAPI sandbox ...", flush=True)
    with EmbeddedBroker() as broker, SandboxThread(sandbox_settings) as sandbox:
        raw = demo_config(broker.bootstrap_servers, sandbox.url)
        raw["observability"] = {
            "enabled": True,
            "host": "127.0.0.1",
            "port": port,
            "log_level": "warning",
        }
        raw["inspector"] = {"enabled": True}
        config = AppConfig.model_validate(raw)
        pipeline = Pipeline(config)
        if stopping.is_set():
            pipeline.request_stop()
        health = start_health(config, pipeline)
        assert health is not None
        producer = threading.Thread(target=_trickle, args=(config, stopping), daemon=True)
        producer.start()
        print(f"events inspector: http://127.0.0.1:{health.port}/inspector")
        print(f"sandbox page:     {sandbox.url}/_sandbox/")
        print("producing a trickle of sample events; Ctrl-C stops everything", flush=True)
        try:
            pipeline.run()
        finally:
            stopping.set()
            producer.join(30)
            health.stop()
    print("stopped: the consumer, the sandbox and the broker", flush=True)
    return 0
