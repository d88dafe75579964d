"""`capi-consumer demo` (`make demo`): the main job end to end on this machine.

Starts an embedded Kafka-protocol broker (librdkafka's mock cluster, in a child process) and the
local CAPI sandbox, produces realistic sample events (a few of them invalid on purpose), runs the
real consumer until the topic is drained and committed, prints what happened, and stops
everything it started.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from consumer.cli.produce import produce_events
from consumer.config import AppConfig
from consumer.devtools.embedded_broker import EmbeddedBroker
from consumer.devtools.samples import generate_events
from consumer.live.pipeline import Pipeline
from consumer.observability.logs import setup_logging
from consumer.sandbox.server import SandboxThread
from consumer.sandbox.settings import SandboxSettings

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
    rows: list[tuple[str, object]] = [
        ("events read", summary["read"]),
        ("delivered (accepted by the API)", summary["delivered"]),
    ]
    rows += [(f"skipped: {reason}", n) for reason, n in sorted(summary["skipped"].items())]
    rows += [
        (f"dead-lettered: {reason}", n) for reason, n in sorted(summary["dead_lettered"].items())
    ]
    rows += [
        ("HTTP requests (batches)", f"{summary['requests']} ({summary['batches']})"),
        ("throughput", f"{summary['events_per_s']:,.0f} events/s"),
    ]
    settled = (
        summary["delivered"]
        + sum(summary["skipped"].values())
        + sum(summary["dead_lettered"].values())
    )
    line = "-" * 64
    print(line)
    print("openai-capi-consumer demo")
    print(line)
    for label, value in rows:
        print(f"{label:<44}{value!s:>20}")
    print(line)
    print(
        f"sandbox (a strict local OpenAI CAPI): {stats['stored']} events stored, "
        f"{stats['duplicates']} duplicates, {sum(stats['rejected'].values())} requests rejected"
    )
    print(f"dead-letter topic '{dlq_topic}': every invalid event, with its reason")
    verdict = "every event accounted for" if settled == summary["read"] else "EVENTS MISSING"
    print(f"{verdict}: {settled} of {summary['read']} settled, offsets committed")
    print(line)


def command(args: argparse.Namespace) -> int:
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
