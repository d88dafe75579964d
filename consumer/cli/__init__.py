"""`capi-consumer`: the parser (`parser.py`) and one module per command, imported lazily."""

from consumer.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
