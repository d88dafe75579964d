"""What an operator sees and relies on: readiness, the ready gauge, a busy port, an unreachable
broker, a misspelled topic (issue 15)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from consumer.devtools.embedded_broker import EmbeddedBroker
from consumer.devtools.samples import generate_events
from consumer.live.pipeline import Pipeline
from consumer.observability.health import HealthServer
from consumer.sandbox.server import SandboxThread
from tests.integration.conftest import (
    as_config,
    consumer_config,
    run_cli,
    stats,
    wait_for,
    write_config,
)
from tests.integration.test_consumer import Running, produce
from tests.integration.test_observability import free_port  # released: nothing listens there

pytestmark = pytest.mark.integration


def serve_health(pipeline: Pipeline) -> HealthServer:
    """The health server of `pipeline` on a free port, started."""
    health = HealthServer(
        pipeline.metrics, lambda: pipeline.heartbeat, pipeline.readiness, "127.0.0.1", 0
    )
    health.start()
    return health


def topic_exists(broker: EmbeddedBroker, topic: str) -> bool:
    probe = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "probe"})
    try:
        return topic in probe.list_topics(timeout=10).topics  # all topics: creates none
    finally:
        probe.close()


def test_a_standby_member_with_no_partition_is_ready_and_the_gauge_follows_unasked(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str]
) -> None:
    # The embedded broker creates topics with 4 partitions: the fifth member gets none.
    topic, group, dlq = names("events"), names("group"), names("dlq")
    raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
    produce(raw, topic, generate_events(20, seed=1, now_ms=int(time.time() * 1000)))
    members = [Running(Pipeline(as_config(raw)), until_caught_up=False) for _ in range(5)]
    try:
        wait_for(
            lambda: (
                all(m.pipeline._group_joined for m in members)
                and sum(len(m.pipeline._assigned) for m in members) == 4
            ),
            60,
            "five members sharing four partitions",
        )
        standby = next(m.pipeline for m in members if not m.pipeline._assigned)
        wait_for(lambda: standby.readiness() == (True, "ok"), 10, "the standby to be ready")
        health = serve_health(standby)
        try:
            # No request to /readyz: the gauge follows readiness on its own, within a second.
            wait_for(lambda: standby.metrics.up._value.get() == 1, 1.5, "capi_consumer_ready 1")
        finally:
            health.stop()
    finally:
        for member in members:
            member.stop()


def test_ready_gauge_drops_within_a_second_when_brokers_go_down(
    sandbox: SandboxThread, names: Callable[[str], str]
) -> None:
    """The brokers really go away (a broker of its own, stopped): once the pipeline knows,
    `capi_consumer_ready` follows within a second, with no request to /readyz."""
    topic, group, dlq = names("events"), names("group"), names("dlq")
    own = EmbeddedBroker().start()
    try:
        raw = consumer_config(own, sandbox.url, [topic], group, dlq)
        produce(raw, topic, generate_events(5, seed=2, now_ms=int(time.time() * 1000)))
        running = Running(Pipeline(as_config(raw)), until_caught_up=False)
        pipeline = running.pipeline
        health = serve_health(pipeline)
        try:
            wait_for(lambda: pipeline.metrics.up._value.get() == 1, 30, "ready")
            own.stop()
            wait_for(lambda: not pipeline.readiness()[0], 30, "not ready with the brokers gone")
            assert pipeline.readiness() == (False, "Kafka not reachable")
            wait_for(lambda: pipeline.metrics.up._value.get() == 0, 1.5, "capi_consumer_ready 0")
        finally:
            health.stop()
            running.stop()
    finally:
        own.stop()


def test_ready_again_on_the_next_broker_response(
    broker: EmbeddedBroker,
    sandbox: SandboxThread,
    names: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ "All brokers down" while they answer again: the next response (the topic check, a
    fetch) makes the pipeline, and the gauge, ready again."""
    from confluent_kafka import KafkaError

    topic, group, dlq = names("events"), names("group"), names("dlq")
    raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
    produce(raw, topic, generate_events(5, seed=2, now_ms=int(time.time() * 1000)))
    running = Running(Pipeline(as_config(raw)), until_caught_up=False)
    pipeline = running.pipeline
    health = serve_health(pipeline)
    try:
        wait_for(lambda: pipeline.metrics.up._value.get() == 1, 30, "ready")
        # The DLQ producer's outage (another cluster, idle connections closed) is not the
        # source's: readiness stays.
        pipeline.dlq_client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        assert pipeline.readiness() == (True, "ok")
        caplog.set_level(logging.INFO, logger="consumer.pipeline")
        pipeline.client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "3/3 brokers are down"))
        wait_for(
            lambda: any(r.getMessage() == "Kafka reachable again" for r in caplog.records),
            15,
            "the recovery line",
        )
        assert pipeline.readiness() == (True, "ok")
        wait_for(lambda: pipeline.metrics.up._value.get() == 1, 1.5, "capi_consumer_ready 1")
    finally:
        health.stop()
        running.stop()


def test_a_misspelled_topic_is_named_never_created_and_never_ready(
    broker: EmbeddedBroker,
    sandbox: SandboxThread,
    names: Callable[[str], str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic, group, dlq = names("evnets"), names("group"), names("dlq")
    raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
    caplog.set_level(logging.INFO, logger="consumer.pipeline")
    running = Running(Pipeline(as_config(raw)), until_caught_up=False)
    try:
        wait_for(
            lambda: any(
                r.levelno == logging.ERROR and getattr(r, "topic", None) == topic
                for r in caplog.records
            ),
            30,
            "an error line naming the topic",
        )
        ready, reason = running.pipeline.readiness()
        assert not ready
        assert topic in reason
    finally:
        running.stop()
    assert not topic_exists(broker, topic)

    result = run_cli(
        "run", "--until-caught-up", "--config", str(write_config(tmp_path / "c.yaml", raw))
    )
    assert result.returncode == 2
    assert f"error: topic '{topic}' does not exist" in result.stderr
    assert not topic_exists(broker, topic)


@pytest.mark.parametrize(
    "command",
    [
        ("run", "--until-caught-up"),
        ("backfill", "--from-beginning"),
        ("dlq", "inspect"),
        ("produce", "--topic", "t"),
    ],
)
def test_bounded_commands_give_up_on_an_unreachable_broker_with_one_line(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    raw = {
        "kafka": {"bootstrap_servers": bootstrap, "topics": ["t"], "unreachable_timeout_s": 2},
        "capi": {"pixel_id": "p", "api_key": "k", "base_url": "http://127.0.0.1:9"},
        "observability": {"enabled": False},
    }
    config = str(write_config(tmp_path / "c.yaml", raw))
    started = time.monotonic()
    result = run_cli(*command, "--config", config, input="{}\n", timeout=60)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert errors == [f"error: cannot reach Kafka at {bootstrap}: " + errors[0].split(": ", 2)[2]]
    assert "Connection refused" in errors[0]
    assert time.monotonic() - started < 30  # the configured 2 s, not librdkafka's minutes


def test_a_live_run_without_broker_logs_each_error_once_and_stays_unready(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = {
        "kafka": {"bootstrap_servers": f"127.0.0.1:{free_port()}", "topics": ["t"]},
        "capi": {"pixel_id": "p", "api_key": "k", "base_url": "http://127.0.0.1:9"},
        "observability": {"enabled": False},
    }
    caplog.set_level(logging.DEBUG)
    running = Running(Pipeline(as_config(raw)), until_caught_up=False)
    cause = running.pipeline._kafka_cause
    try:
        # librdkafka reports the refused connection a few times a second.
        wait_for(lambda: cause.seen >= 20, 30, "twenty Kafka errors")
        assert running.pipeline.readiness() == (False, "Kafka not reachable")
    finally:
        running.stop()
    kafka_lines = [
        r for r in caplog.records if r.name.startswith("librdkafka") or "kafka client" in r.message
    ]
    distinct = {(r.name, r.getMessage(), getattr(r, "error", None)) for r in kafka_lines}
    assert len(kafka_lines) == len(distinct) <= 6


def test_a_busy_observability_port_is_one_line_and_exit_1_before_consuming(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group, dlq = names("events"), names("group"), names("dlq")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        raw = consumer_config(
            broker,
            sandbox.url,
            [topic],
            group,
            dlq,
            observability={"enabled": True, "host": "127.0.0.1", "port": port},
        )
        produce(raw, topic, generate_events(10, seed=3, now_ms=int(time.time() * 1000)))
        result = run_cli("run", "--config", str(write_config(tmp_path / "c.yaml", raw)))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert lines == [
        f"error: cannot listen on the observability port {port} "
        "(observability.host 127.0.0.1): Address already in use"
    ]
    assert "Traceback" not in result.stderr
    assert stats(sandbox)["requests"] == 0  # nothing was consumed, nothing sent


# -- secrets (issue 15 #3) and the projection on the registry path (#2) --------------------------

PLANTED = {
    "bearer": "Bearer sk-planted-0123456789abcdef",
    "key": "sk-planted-0123456789abcdef",
    "password": "hunter2-planted",
    "email": "planted.person@example.org",
    "phone": "+33 6 12 34 56 78",
    "ipv4": "198.51.100.77",
    "ipv6": "2001:db8:85a3::8a2e:370:7334",
}
API_ERROR = (
    f"invalid request from {PLANTED['email']} (phone {PLANTED['phone']}) at "
    f"{PLANTED['ipv4']} / {PLANTED['ipv6']}: header Authorization: {PLANTED['bearer']} "
    f"rejected; registry https://robot:{PLANTED['password']}@registry.example.com said "
    f"password={PLANTED['password']}"
)


def leaked(text: str) -> list[str]:
    return [kind for kind, value in PLANTED.items() if value in text]


def test_api_error_text_is_redacted_in_the_dlq_headers_inspect_and_logs(
    broker: EmbeddedBroker, names: Callable[[str], str], tmp_path: Path
) -> None:
    from consumer.live.dlq import DeadLetterCodec
    from tests.integration.conftest import read_topic, sandbox_settings

    fault = {"script": [{"status": 400, "body": '{"error": {"message": "' + API_ERROR + '"}}'}]}
    with SandboxThread(sandbox_settings(faults=fault)) as sandbox:
        topic, group, dlq = names("events"), names("group"), names("dlq")
        raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
        raw["observability"]["log_level"] = "debug"
        [event] = [
            e
            for e in generate_events(50, seed=4, now_ms=int(time.time() * 1000))
            if e["event_name"] == "purchase"
        ][:1]
        produce(raw, topic, [event])
        [source] = read_topic(broker, topic)
        config = str(write_config(tmp_path / "c.yaml", raw))
        result = run_cli("run", "--until-caught-up", "--config", config)
        assert result.returncode == 0, result.stderr
    [record] = read_topic(broker, dlq)
    letter = DeadLetterCodec().decode(record.value())
    assert letter["reason"] == "rejected_by_api"
    assert "invalid request from [redacted]" in letter["message"]  # the API's words remain
    headers = " ".join(v.decode() for k, v in record.headers() if k.startswith("capi.dlq."))
    shown = f"{letter['message']} {letter['field']} {headers}"
    assert leaked(shown) == []
    assert letter["value"] == source.value()  # the original bytes, intact for replay
    assert letter["key"] == source.key()
    inspect = run_cli("dlq", "inspect", "--config", config)
    assert inspect.returncode == 0, inspect.stderr
    assert "[redacted]" in inspect.stdout
    assert leaked(inspect.stdout + inspect.stderr) == []
    assert leaked(result.stdout + result.stderr) == []


def test_registry_credentials_stay_out_of_logs_and_config_check_and_projection_is_on(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    from consumer.devtools.registry_stub import RegistryStub

    with RegistryStub() as registry:
        topic, group, dlq = names("events"), names("group"), names("dlq")
        url = registry.url.replace("http://", f"http://robot:{PLANTED['password']}@")
        raw = consumer_config(
            broker, sandbox.url, [topic], group, dlq, schema={"registry_url": url}
        )
        raw["observability"]["log_level"] = "debug"
        produce(raw, topic, generate_events(50, seed=5, now_ms=int(time.time() * 1000)))
        config = str(write_config(tmp_path / "c.yaml", raw))
        result = run_cli("run", "--until-caught-up", "--config", config)
        check = run_cli("config", "check", "--config", config)
    assert result.returncode == 0, result.stderr
    # The human summary `demo` prints, on stdout.
    assert "events read" in result.stdout
    assert "every event accounted for: 50 of 50 settled, offsets committed" in result.stdout
    assert '"wire_format":"confluent"' in result.stderr
    assert '"projection":"on"' in result.stderr  # the fast decoder on the documented setup
    assert "projection failed" not in result.stderr
    assert PLANTED["password"] not in result.stderr + result.stdout
    assert check.returncode == 0, check.stderr
    assert PLANTED["password"] not in check.stdout
    assert "robot" not in check.stdout
    assert "http://***@127.0.0.1" in check.stdout


def test_sample_piped_into_produce_as_the_readme_shows(
    broker: EmbeddedBroker, names: Callable[[str], str], tmp_path: Path
) -> None:
    import subprocess

    from tests.integration.conftest import CLI, end_offsets

    topic = names("samples")
    raw = {"kafka": {"bootstrap_servers": broker.bootstrap_servers}}
    config = str(write_config(tmp_path / "c.yaml", raw))
    command = f"{CLI} sample --count 1000 | {CLI} produce --topic {topic} --config {config}"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"produced 1000 events to {topic}, skipped 0, failed 0"
    assert sum(end_offsets(broker, [topic]).values()) == 1000


def test_a_restart_after_kill_9_says_what_it_waits_for(
    broker: EmbeddedBroker, sandbox: SandboxThread, names: Callable[[str], str], tmp_path: Path
) -> None:
    import signal

    from tests.integration.conftest import start_cli

    topic, group, dlq = names("events"), names("group"), names("dlq")
    raw = consumer_config(broker, sandbox.url, [topic], group, dlq)
    raw["kafka"]["settings"] = {"session.timeout.ms": 20000, "heartbeat.interval.ms": 500}
    produce(raw, topic, generate_events(10, seed=6, now_ms=int(time.time() * 1000)))
    config = str(write_config(tmp_path / "c.yaml", raw))
    first = start_cli("run", "--config", config)
    try:
        wait_for(lambda: stats(sandbox)["accepted"] > 0, 60, "the first member to deliver")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    second = start_cli("run", "--config", config)
    lines: list[str] = []
    assert second.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(second.stderr), daemon=True)
    reader.start()
    try:
        told = wait_for(
            lambda: [line for line in lines if "waiting for the group's partition" in line],
            30,
            "a line saying what the restart waits for",
        )
        assert "session.timeout.ms" in told[0]
        assert '"session_timeout_ms":20000' in told[0]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
        reader.join(10)
