"""`capi-consumer dlq inspect` and `dlq replay` end to end: a mapping mistake parks events in the
DLQ, inspect summarizes them without PII, a replay with the mistake still there writes them back
with attempts + 1 and stops at its snapshot, a replay with the fix delivers them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumer.cli.produce import produce_events
from consumer.devtools.embedded_broker import EmbeddedBroker
from consumer.devtools.samples import generate_events
from consumer.sandbox.server import SandboxThread
from tests.integration.conftest import (
    as_config,
    committed_offsets,
    consumer_config,
    read_dlq,
    run_cli,
    stats,
    stored_ids,
    write_config,
)
from transforms import Failed, map_event

pytestmark = pytest.mark.integration

BROKEN = {"field_mapping": {"data.currency": "nope"}}  # amounts without currency: missing_field


def cli_report(*args: str) -> dict[str, Any]:
    result = run_cli(*args, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = orjson.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_replay_after_a_mapping_fix_delivers_what_was_dead_lettered(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group, dlq = names("events"), names("live"), names("dlq")
    fixed_raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
    broken_raw = consumer_config(
        broker, sandbox.url, [topic], group, dlq, dlq={"topic": dlq, "max_ratio": 1.0}, **BROKEN
    )
    fixed = write_config(tmp_path / "fixed.yaml", fixed_raw)
    broken = write_config(tmp_path / "broken.yaml", broken_raw)
    events = generate_events(150, seed=21, now_ms=time.time_ns() // 1_000_000)
    assert produce_events(as_config(fixed_raw), topic, events).produced == len(events)
    compiled = as_config(broken_raw).compile()
    now = time.time_ns() // 1_000_000
    failing = {
        e["context"]["event_id"] for e in events if isinstance(map_event(e, compiled, now), Failed)
    }
    assert failing

    # The live consumer with the mistake: those events are parked, the others delivered.
    result = run_cli("run", "--config", str(broken), "--until-caught-up", timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not failing & set(stored_ids(sandbox))
    first_letters = read_dlq(broker, dlq)
    assert len(first_letters) == len(failing)

    # Inspect: counts by reason and examples with coordinates, never a payload or identifier.
    inspect = run_cli("dlq", "inspect", "--config", str(fixed), "--examples", "2")
    assert inspect.returncode == 0, inspect.stderr[-3000:]
    summary = orjson.loads(inspect.stdout)
    assert summary["total"] == len(failing)
    missing = summary["reasons"]["missing_field"]
    assert missing["count"] == len(failing)
    assert missing["topics"] == {topic: len(failing)}
    assert missing["max_attempts"] == 1
    assert len(missing["examples"]) == 2
    assert missing["examples"][0]["field"] == "data.currency"
    identifiers = {
        str(value)
        for e in events
        for value in (e["user"].get("email"), e["user"].get("id"), e["context"]["device"]["ip"])
        if value
    }
    assert not [i for i in identifiers if i in inspect.stdout]

    # Replay with the mistake still there: back to the DLQ with attempts + 1 and the original
    # coordinates; the run ends at its snapshot instead of re-reading what it wrote.
    again = cli_report("dlq", "replay", "--config", str(broken), "--reason", "missing_field")
    assert again["dead_lettered"] == {"missing_field": len(failing)}
    assert again["delivered"] == 0
    copies: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for letter in read_dlq(broker, dlq):
        copies.setdefault((letter["topic"], letter["partition"], letter["offset"]), []).append(
            letter
        )
    assert len(copies) == len(failing)
    for first, second in (sorted(pair, key=lambda x: x["attempts"]) for pair in copies.values()):
        assert second["attempts"] == first["attempts"] + 1
        assert second["value"] == first["value"]
        assert second["reason"] == "missing_field"

    # A dry run filtered to another reason reads them all, sends nothing, commits nothing.
    dry = cli_report("dlq", "replay", "--config", str(fixed), "--dry-run", "--reason", "too_large")
    assert dry["read"] == dry["filtered"] == 2 * len(failing)
    assert dry["mapped"] == 0
    assert stats(sandbox)["stored"] == len(events) - len(failing)
    assert set(committed_offsets(broker, dry["group"], [dlq]).values()) == {-1001}

    # The fix: every parked event reaches the API (both copies; the API dedups on the id).
    replay = cli_report("dlq", "replay", "--config", str(fixed))
    assert replay["delivered"] == 2 * len(failing)
    assert replay["complete"] is True
    assert failing <= set(stored_ids(sandbox))
    assert len(read_dlq(broker, dlq)) == 2 * len(failing)  # nothing written back

    # The cursor: a second replay with the same filter has nothing left to read.
    nothing = cli_report("dlq", "replay", "--config", str(fixed))
    assert (nothing["group"], nothing["total"], nothing["read"]) == (replay["group"], 0, 0)
