"""`capi-consumer map` as a user runs it: the installed command, stdin to stdout."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from consumer.cli import map as map_module
from consumer.cli.map import CHUNK_BYTES, map_lines, map_stream
from transforms import MappingSettings

CLI = Path(sys.executable).with_name("capi-consumer")
NOW = 1_773_892_900_000
DEFAULT = MappingSettings()


def _event(index: int, **extra: object) -> dict[str, object]:
    return {
        "event_name": "purchase",
        "context": {"event_id": f"e{index}", "event_timestamp": NOW - index},
        "url": "https://shop.example/p",
        **extra,
    }


def run_map(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAPI_CONSUMER_")}
    environment.update(env or {})
    return subprocess.run(
        [str(CLI), "map", *args],
        input=stdin,
        capture_output=True,
        env=environment,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("config", "line"),
    [
        (
            "event_mapping:\n  purchase: order_completed\n",
            b"configuration error: event_mapping.purchase: "
            b"'order_completed' is not a CAPI event type",
        ),
        (
            "field_mapping:\n  user.email: user.mail\n",
            b"configuration error: field_mapping.user.email: not a CAPI field path",
        ),
        (
            "defaults:\n  action_source: web_site\n",
            b"configuration error: defaults.action_source: 'web_site' is not an action source "
            b"(email, mobile_app, offline, other, phone_call, physical_store, web or a CA synonym)",
        ),
        (
            "keep_url_query: maybe\n",
            b"configuration error: keep_url_query: "
            b"Input should be a valid boolean, unable to interpret input",
        ),
        ("mapping: {}\n", b"configuration error: mapping: unknown key"),
    ],
)
def test_a_bad_config_is_one_stderr_line_and_exit_2(
    tmp_path: Path, config: str, line: bytes
) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config, encoding="utf-8")
    result = run_map("--config", str(config_file), stdin=orjson.dumps(_event(1)) + b"\n")
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr == line + b"\n"


def test_a_missing_config_file_is_exit_2(tmp_path: Path) -> None:
    result = run_map("--config", str(tmp_path / "absent.yaml"), stdin=b"{}\n")
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.startswith(b"configuration error: cannot read ")
    assert result.stderr.count(b"\n") == 1


def test_a_bad_command_line_is_exit_2() -> None:
    result = run_map("--now", "yesterday", stdin=b"{}\n")
    assert result.returncode == 2
    assert result.stdout == b""


def test_an_environment_override_is_a_config(tmp_path: Path) -> None:
    result = run_map(
        "--now",
        str(NOW),
        stdin=orjson.dumps(_event(1)) + b"\n",
        env={"CAPI_CONSUMER_EVENT_MAPPING__PURCHASE": "null"},
    )
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {
        "skipped": {"reason": "unmapped_event", "event_name": "purchase"}
    }


def test_one_compact_line_per_input_line_in_order_across_chunks() -> None:
    """2,500 lines of ~1 KB and one longer than a chunk cross the 1 MiB chunks, cut mid-line (so
    worker processes map them); bad lines keep their place."""
    pad = "x" * 1000
    lines = []
    for index in range(2500):
        if index == 1234:
            lines.append(orjson.dumps(_event(index, pad="y" * (CHUNK_BYTES + 10))))
        elif index % 100 == 7:
            lines.append(b"")  # an empty line
        elif index % 100 == 8:
            lines.append(b"{not json")
        elif index % 100 == 9:
            lines.append(orjson.dumps(_event(index, event_name="refund")))
        else:
            lines.append(orjson.dumps(_event(index, pad=pad)))
    assert len(lines) * len(pad) > 2 * CHUNK_BYTES
    result = run_map("--now", str(NOW), stdin=b"\n".join(lines))  # no final newline
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    outputs = result.stdout.split(b"\n")
    assert outputs[-1] == b""  # every output line ends with a newline
    outputs = outputs[:-1]
    assert len(outputs) == len(lines)
    for index, output in enumerate(outputs):
        parsed = orjson.loads(output)
        assert output == orjson.dumps(parsed)  # compact
        if index % 100 in (7, 8):
            assert parsed["error"]["code"] == "invalid_json"
        elif index % 100 == 9:
            assert parsed == {"skipped": {"reason": "unmapped_event", "event_name": "refund"}}
        else:
            assert parsed["id"] == f"e{index}"
            assert parsed["timestamp_ms"] == NOW - index


def test_empty_input_gives_empty_output() -> None:
    result = run_map("--now", str(NOW))
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_now_defaults_to_the_clock() -> None:
    before = time.time_ns() // 1_000_000
    stdin = b"\n".join(
        [
            orjson.dumps({"event_name": "sign_up", "context": {"event_id": "a"}}),
            orjson.dumps(
                {
                    "event_name": "sign_up",
                    "context": {"event_id": "b", "event_timestamp": before - 60_000},
                }
            ),
        ]
    )
    result = run_map(stdin=stdin)
    after = time.time_ns() // 1_000_000
    assert result.returncode == 0, result.stderr
    without_time, one_minute_ago = (orjson.loads(line) for line in result.stdout.splitlines())
    assert before <= without_time["timestamp_ms"] <= after
    assert one_minute_ago["timestamp_ms"] == before - 60_000


def test_a_closed_reader_ends_the_command_quietly(tmp_path: Path) -> None:
    """`capi-consumer map < big | head -1`: no traceback when the pipe closes early."""
    big = tmp_path / "events.jsonl"
    big.write_bytes((orjson.dumps(_event(1)) + b"\n") * 20_000)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAPI_CONSUMER_")}
    with big.open("rb") as stdin:
        process = subprocess.Popen(
            [str(CLI), "map", "--now", str(NOW)],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
        )
        assert process.stdout is not None
        assert process.stdout.readline().startswith(b'{"id":"e1"')
        process.stdout.close()
        _, stderr = process.communicate(timeout=60)
    assert b"Traceback" not in stderr, stderr.decode()
    assert process.returncode == 1


@pytest.mark.parametrize("final_newline", [b"\n", b""])
def test_worker_processes_give_the_same_lines_as_one_process(
    monkeypatch: pytest.MonkeyPatch, final_newline: bytes
) -> None:
    """Small chunks, cut mid-line, at a newline and inside a line longer than a chunk."""
    monkeypatch.setattr(map_module, "CHUNK_BYTES", 1000)
    settings = MappingSettings.model_validate({"event_mapping": {"refund": "custom"}})
    lines = [
        orjson.dumps(_event(index, event_name="refund" if index % 3 else "purchase"))
        for index in range(317)
    ]
    lines[100] = orjson.dumps(_event(100, pad="z" * 2500))
    lines[200:200] = [b"", b"\r", b"{not json\r"]
    source = b"\n".join(lines) + final_newline
    expected = b"".join(line + b"\n" for line in map_lines(lines, settings.compile(), NOW))
    for workers in (1, 2):
        sink = io.BytesIO()
        map_stream(io.BytesIO(source), sink, settings, NOW, workers=workers)
        assert sink.getvalue() == expected
    assert expected.count(b"\n") == len(lines)


@pytest.mark.parametrize("size", [1, 2, 3, 50, 99, 100, 101, 250])
def test_every_cut_of_the_chunks_gives_the_same_lines(
    monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    monkeypatch.setattr(map_module, "CHUNK_BYTES", size)
    lines = [orjson.dumps(_event(index)) for index in range(3)] + [b"", b"[]", b"{"]
    source = b"\n".join(lines)
    expected = b"".join(line + b"\n" for line in map_lines(lines, DEFAULT.compile(), NOW))
    sink = io.BytesIO()
    map_stream(io.BytesIO(source), sink, DEFAULT, NOW, workers=1)
    assert sink.getvalue() == expected


def test_now_in_seconds_is_refused() -> None:
    result = run_map("--now", str(NOW // 1000), stdin=orjson.dumps(_event(1)) + b"\n")
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr == (
        f"--now: {NOW // 1000} looks like epoch seconds; give epoch milliseconds\n".encode()
    )


def test_sample_events_are_valid_unless_asked_and_reproducible_with_a_seed() -> None:
    def sample(*args: str) -> bytes:
        return subprocess.run(
            [str(CLI), "sample", "--now", str(NOW), *args],
            capture_output=True,
            timeout=120,
            check=True,
        ).stdout

    lines = sample("--count", "300", "--seed", "5")
    assert len(lines.splitlines()) == 300
    assert lines == sample("--count", "300", "--seed", "5")
    assert lines != sample("--count", "300")  # no seed: new events each time
    mapped = run_map("--now", str(NOW), stdin=lines).stdout.splitlines()
    assert len(mapped) == 300
    assert not [line for line in mapped if line.startswith(b'{"error"')]
    invalid = sample("--count", "300", "--seed", "5", "--invalid-ratio", "0.2")
    outcomes = run_map("--now", str(NOW), stdin=invalid).stdout.splitlines()
    assert 20 <= sum(line.startswith((b'{"error"', b'{"skipped"')) for line in outcomes) <= 100
