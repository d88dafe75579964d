"""`capi-consumer run`: wire the config into a pipeline, serve health and metrics, handle
signals, and turn the way the run ended into an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from consumer.cli.progress import summary_lines
from consumer.cli.startup import load_or_exit, tune_memory
from consumer.codes import ExitReason
from consumer.config import AppConfig, ConfigError
from consumer.exit_codes import (
    EXIT_CONFIG,
    EXIT_CREDENTIALS,
    EXIT_DLQ_BREAKER,
    EXIT_OK,
    EXIT_UNEXPECTED,
)
from consumer.live.pipeline import Pipeline
from consumer.live.reachability import KafkaUnreachable, MissingTopics
from consumer.observability.health import HealthServer, PortUnavailable
from consumer.observability.logs import setup_logging
from transforms import envelope

log = logging.getLogger("consumer.run")


def install_signal_handlers(stop: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT: graceful stop. Second: exit at once."""
    received: list[int] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        if received:
            os._exit(130)
        received.append(signum)
        log.info("stop requested; flushing", extra={"signal": signal.Signals(signum).name})
        stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def start_health(config: AppConfig, pipeline: Pipeline) -> HealthServer | None:
    settings = config.observability
    if not settings.enabled:
        return None

    server = HealthServer(
        pipeline.metrics,
        lambda: pipeline.heartbeat,
        pipeline.readiness,
        settings.host,
        settings.port,
        pipeline.inspector,
    )
    server.start()
    return server


def exit_code(reason: ExitReason, pipeline: Pipeline) -> int:
    if reason in ("stopped", "caught_up"):
        return EXIT_OK
    if reason == "breaker":
        return EXIT_DLQ_BREAKER
    if reason == "fatal":
        return EXIT_CREDENTIALS if pipeline.credentials_rejected else EXIT_UNEXPECTED
    return EXIT_UNEXPECTED


def transforms_build() -> str:
    """`compiled` when transforms/ was built with mypyc (`CAPI_CONSUMER_MYPYC=1` at install),
    else `python`."""
    return "python" if str(envelope.__file__).endswith(".py") else "compiled"


def run_pipeline(config: AppConfig, pipeline: Pipeline, until_caught_up: bool) -> int:
    install_signal_handlers(pipeline.request_stop)
    tune_memory()
    log.info("transforms: %s", transforms_build())
    try:
        health = start_health(config, pipeline)
    except PortUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)  # before anything is consumed
        return EXIT_UNEXPECTED
    try:
        reason = pipeline.run(until_caught_up=until_caught_up)
    except KafkaUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNEXPECTED
    except MissingTopics as exc:
        print(f"error: {exc} (kafka.topics)", file=sys.stderr)
        return EXIT_CONFIG
    except Exception:
        log.exception("unexpected error")
        return EXIT_UNEXPECTED
    finally:
        if health is not None:
            health.stop()
    summary = pipeline.summary.as_dict()
    if reason in ("fatal", "error") and pipeline.failure is not None:
        print(f"error: {pipeline.failure}", file=sys.stderr)
    elif reason == "breaker":
        print(
            "error: DLQ breaker tripped: more than "
            f"{config.dlq.max_ratio:.0%} of the last {config.dlq.window} events were "
            "dead-lettered; check the schema and the mapping (capi-consumer dlq inspect)",
            file=sys.stderr,
        )
    log.info("run finished", extra={"reason": reason, **summary, **pipeline.summary.busy()})
    return exit_code(reason, pipeline)


def command(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    try:
        config.require_for_run()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    from consumer.avro.schema_check import mapping_schema_problems

    for problem in mapping_schema_problems(config):
        print(f"warning: {problem}", file=sys.stderr)
    setup_logging(config.observability.log_level, config.observability.log_format)
    pipeline = Pipeline(config)
    code = run_pipeline(config, pipeline, args.until_caught_up)
    if args.until_caught_up and pipeline.ran:
        # The same human summary `demo` prints (the JSON one is the `run finished` log line).
        lines = summary_lines(pipeline.summary.as_dict(), "openai-capi-consumer run")
        print("\n".join([*lines, lines[0]]))
    return code
