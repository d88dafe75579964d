"""`capi-consumer sample [--count N] [--seed S] [--now MS] [--invalid-ratio R]`

Realistic Commanders Act events (consumer/samples.py: synthetic identities, a busy shop's event
mix) as JSON lines on stdout, ready for `capi-consumer produce`. All valid unless
`--invalid-ratio` asks for a share of invalid ones. Without `--seed` every call gives new events
(new event ids, so the API does not take them for duplicates).
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import orjson

from consumer.cli.startup import SMALLEST_EPOCH_MS
from consumer.devtools.samples import generate_events
from consumer.exit_codes import EXIT_CONFIG, EXIT_OK

_CHUNK = 10_000  # events built and written at a time: memory stays flat for any --count


def command(args: argparse.Namespace) -> int:
    problem = None
    if args.count < 0:
        problem = "--count must be 0 or more"
    elif args.now is not None and args.now < SMALLEST_EPOCH_MS:
        problem = f"--now: {args.now} looks like epoch seconds; give epoch milliseconds"
    elif not 0.0 <= args.invalid_ratio <= 1.0:
        problem = "--invalid-ratio must be between 0 and 1"
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_CONFIG
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    now_ms = args.now if args.now is not None else time.time_ns() // 1_000_000
    out = sys.stdout.buffer
    for chunk, start in enumerate(range(0, args.count, _CHUNK)):
        count = min(_CHUNK, args.count - start)
        events = generate_events(
            count, seed=seed + chunk, now_ms=now_ms, invalid_ratio=args.invalid_ratio
        )
        out.write(b"".join(orjson.dumps(event) + b"\n" for event in events))
    out.flush()
    return EXIT_OK
