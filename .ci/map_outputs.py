"""`capi-consumer map` output on every golden case and on sample events, written to a directory.

    <venv>/bin/python .ci/map_outputs.py OUT_DIR

`.ci/run` runs it with the pure-Python install and with the mypyc one (CAPI_CONSUMER_MYPYC=1) and
requires the two directories to be byte-identical. The command is the one of the venv running
this script (`run_map` of the golden tests: exit 0, nothing on stderr); cases are grouped by
config and clock, one process per group.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import orjson

from consumer.devtools.samples import generate_events
from tests.transforms.goldens import GoldenCase, load_cases
from tests.transforms.test_golden import run_map

SAMPLE_EVENTS = 20_000
SAMPLE_NOW_MS = 1_773_892_900_000


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / "scratch"
    scratch.mkdir(exist_ok=True)

    def group_key(case: GoldenCase) -> tuple[bytes, int]:
        return case.config_key, case.now

    cases = sorted(load_cases(), key=group_key)
    for index, (_, group) in enumerate(itertools.groupby(cases, key=group_key)):
        chosen = list(group)
        lines = run_map(chosen[0].config, chosen[0].now, [c.line for c in chosen], scratch)
        (out / f"golden-{index:03d}.jsonl").write_bytes(b"\n".join(lines))
    samples = generate_events(SAMPLE_EVENTS, seed=14, now_ms=SAMPLE_NOW_MS, invalid_ratio=0.05)
    lines = run_map({}, SAMPLE_NOW_MS, [orjson.dumps(event) for event in samples], scratch)
    (out / "samples.jsonl").write_bytes(b"\n".join(lines))
    for leftover in scratch.iterdir():
        leftover.unlink()
    scratch.rmdir()


if __name__ == "__main__":
    main()
