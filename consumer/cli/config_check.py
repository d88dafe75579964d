"""`capi-consumer config check`: validate, print the effective configuration, masked."""

from __future__ import annotations

import argparse

import yaml

from consumer.cli.startup import load_or_exit
from consumer.config import masked
from consumer.exit_codes import EXIT_OK


def command(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    if not args.mapping_only:
        config.require_for_run()  # a ConfigError: one line naming the key, exit 2
    print(yaml.safe_dump(masked(config), sort_keys=False), end="")
    return EXIT_OK
