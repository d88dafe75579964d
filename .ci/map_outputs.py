"""`capi-consumer map` output on every golden case and on sample events, written to a directory.

    <venv>/bin/python .ci/map_outputs.py OUT_DIR

`.ci/run` runs it with the pure-Python install and with the mypyc one (CAPI_CONSUMER_MYPYC=1) and
requires the two directories to be byte-identical. The command is the one of the venv running
this script; cases are grouped by config and clock, one process per group.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import orjson
import yaml

from consumer.devtools.samples import generate_events
from tests.transforms.goldens import GoldenCase, load_cases

SAMPLE_EVENTS = 20_000
SAMPLE_NOW_MS = 1_773_892_900_000


def run_map(config: dict[str, object], now: int, lines: list[bytes], directory: Path) -> bytes:
    command = [str(Path(sys.executable).with_name("capi-consumer")), "map", "--now", str(now)]
    if config:
        config_file = directory / "config.yaml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        command += ["--config", str(config_file)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAPI_CONSUMER_")}
    done = subprocess.run(
        command,
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        env=environment,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"map failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return done.stdout + b"--- stderr\n" + done.stderr


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)

    def group_key(case: GoldenCase) -> tuple[bytes, int]:
        return case.config_key, case.now

    cases = sorted(load_cases(), key=group_key)
    for index, (_, group) in enumerate(itertools.groupby(cases, key=group_key)):
        chosen = list(group)
        output = run_map(chosen[0].config, chosen[0].now, [case.line for case in chosen], out)
        (out / f"golden-{index:03d}.jsonl").write_bytes(output)
    samples = generate_events(SAMPLE_EVENTS, seed=14, now_ms=SAMPLE_NOW_MS, invalid_ratio=0.05)
    lines = [orjson.dumps(event) for event in samples]
    (out / "samples.jsonl").write_bytes(run_map({}, SAMPLE_NOW_MS, lines, out))
    (out / "config.yaml").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
