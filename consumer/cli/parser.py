"""`capi-consumer`: one entry point, one subcommand per job. Handlers are imported lazily so
`map` starts fast and a command never pays for another's dependencies."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from consumer.cli.startup import limit_malloc_arenas
from consumer.config import ConfigError
from consumer.exit_codes import EXIT_CONFIG

Handler = Callable[[argparse.Namespace], int]


def _handler(module: str, function: str = "command") -> Handler:
    def run(args: argparse.Namespace) -> int:
        handler: Handler = getattr(importlib.import_module(module), function)
        return handler(args)

    return run


def _config_arg(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        required=required,
        help="YAML configuration file (CAPI_CONSUMER_* environment variables override it)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="capi-consumer",
        description="Stream Commanders Act events from Kafka to the OpenAI Conversions API.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("map", help="map CA events (JSON lines on stdin) to CAPI events")
    _config_arg(p, required=False)
    p.add_argument("--now", type=int, metavar="EPOCH_MS", help="the clock (default: now)")
    p.add_argument(
        "--diff",
        metavar="NEW_CONFIG",
        help="map with --config (old; default: the default mapping) and NEW_CONFIG; print the "
        "lines whose output differs",
    )
    p.set_defaults(handler=_handler("consumer.cli.map"))

    p = commands.add_parser("run", help="consume, map and deliver (the service)")
    _config_arg(p, required=True)
    p.add_argument(
        "--until-caught-up",
        action="store_true",
        help="snapshot the end offsets at start; exit 0 once all is settled and committed",
    )
    p.set_defaults(handler=_handler("consumer.cli.run"))

    p = commands.add_parser("produce", help="encode CA JSON events (stdin) as Avro and produce")
    p.add_argument("--topic", required=True)
    _config_arg(p, required=False)
    p.add_argument("--bootstrap", metavar="HOST:PORT", help="overrides kafka.bootstrap_servers")
    p.set_defaults(handler=_handler("consumer.cli.produce"))

    p = commands.add_parser("sample", help="write realistic CA events (JSON lines) to stdout")
    p.add_argument("--count", type=int, default=100, metavar="N")
    p.add_argument("--seed", type=int, metavar="S", help="the same seed gives the same events")
    p.add_argument("--now", type=int, metavar="EPOCH_MS", help="events fall in the hour before")
    p.add_argument(
        "--invalid-ratio",
        type=float,
        default=0.0,
        metavar="R",
        help="share of events built to be dead-lettered or skipped (default 0)",
    )
    p.set_defaults(handler=_handler("consumer.cli.sample"))

    p = commands.add_parser("sandbox", help="a local, strict OpenAI CAPI endpoint")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--api-key", action="append", default=[], metavar="KEY")
    p.add_argument("--pixel-id", action="append", default=[], metavar="PID")
    _config_arg(p, required=False)
    p.set_defaults(handler=_handler("consumer.cli.sandbox"))

    p = commands.add_parser("backfill", help="re-send a bounded range of history")
    _config_arg(p, required=True)
    p.add_argument("--from-offset", metavar="T:P:O,...|N")
    p.add_argument("--to-offset", metavar="T:P:O,...|N", help="exclusive")
    p.add_argument("--from-time", metavar="ISO8601|EPOCH_MS")
    p.add_argument("--to-time", metavar="ISO8601|EPOCH_MS", help="exclusive")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--topics", metavar="A,B")
    p.add_argument("--partitions", metavar="0,2")
    p.add_argument("--run-id", help="default: derived from the range, so a re-run resumes")
    p.add_argument("--dry-run", action="store_true", help="map and count, send nothing")
    p.add_argument("--dlq-expired", action="store_true", help="dead-letter events past 7 days")
    p.add_argument("--max-events-per-second", type=float, metavar="N")
    p.set_defaults(handler=_handler("consumer.cli.backfill"))

    dlq = commands.add_parser("dlq", help="inspect or replay the dead-letter topic")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    p = dlq_commands.add_parser("replay", help="re-map and re-send dead-lettered events")
    _config_arg(p, required=True)
    p.add_argument("--reason", action="append", metavar="CODE")
    p.add_argument("--from-time", metavar="ISO8601|EPOCH_MS")
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=_handler("consumer.cli.dlq", "replay_command"))
    p = dlq_commands.add_parser("inspect", help="summary of the DLQ by reason, with examples")
    _config_arg(p, required=True)
    p.add_argument("--examples", type=int, default=3, metavar="N")
    p.set_defaults(handler=_handler("consumer.cli.dlq", "inspect_command"))

    cfg = commands.add_parser("config", help="configuration tools")
    cfg_commands = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    p = cfg_commands.add_parser("check", help="validate; print the effective config, masked")
    _config_arg(p, required=False)
    p.add_argument(
        "--mapping-only",
        action="store_true",
        help="check only the mapping keys (what `map` needs), not what `run` needs",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="mapping paths the Avro schema cannot fill are errors (exit 2), not warnings",
    )
    p.add_argument(
        "--online",
        action="store_true",
        help="send one validate_only sample event per configured pixel (nothing is stored)",
    )
    p.set_defaults(handler=_handler("consumer.cli.config_check"))

    p = commands.add_parser("demo", help="end to end on an embedded broker and the sandbox")
    p.add_argument("--events", type=int, default=3000)
    p.add_argument(
        "--serve",
        action="store_true",
        help="keep running with the events inspector and a trickle of events until Ctrl-C",
    )
    p.add_argument(
        "--port", type=int, default=0, help="--serve: the inspector's port (default: any free)"
    )
    p.set_defaults(handler=_handler("consumer.cli.demo"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    limit_malloc_arenas()
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
