"""The live loop without a broker or HTTP: an in-memory source, fake delivery and DLQ, a clock
that ticks when read (tests/consumer/live/fakes.py). Every run is bounded: it ends caught up,
on a stop the test requests at a given turn, or on a fatal condition."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from consumer.avro.encoder import Encoder
from consumer.config import AppConfig, SchemaSettings
from consumer.devtools.samples import generate_events
from consumer.errors import DlqBreakerTripped
from consumer.live.delivery import BatchResult
from consumer.live.gate import Gate
from consumer.live.offsets import TopicPartitionKey
from consumer.live.pipeline import Pipeline
from tests.consumer.live.fakes import (
    FakeDeadLetters,
    FakeDelivery,
    InMemorySource,
    TickingClock,
    live_config,
)

NOW_MS = 1_773_892_800_000
P0: TopicPartitionKey = ("events", 0)
P1: TopicPartitionKey = ("events", 1)
MAX_TURNS = 20_000  # a bug that never ends the loop fails the test instead of hanging it


@functools.cache
def encoded_events(n: int, seed: int = 7) -> list[bytes | None]:
    """Sample events, Avro-encoded; all of them map (the first test checks it)."""
    encoder = Encoder(SchemaSettings())
    return [encoder.encode(event, "events") for event in generate_events(n, seed, NOW_MS)]


class Harness:
    def __init__(
        self,
        config: AppConfig,
        log: dict[TopicPartitionKey, list[bytes | None]],
        *,
        gate: Gate | None = None,
        hold: bool = False,
    ) -> None:
        self.source = InMemorySource(log, timestamp_ms=NOW_MS - 60_000)
        self.delivery = FakeDelivery(hold=hold)
        self.dead_letters = FakeDeadLetters()
        extra: dict[str, Any] = {} if gate is None else {"gate": gate}
        self.pipeline = Pipeline(
            config,
            clock=TickingClock(NOW_MS / 1000),
            source=self.source,
            delivery=self.delivery,
            dead_letters=self.dead_letters,
            **extra,
        )
        self.at_turn: dict[int, Callable[[], None]] = {}
        self.source.on_consume = self._turn

    def _turn(self, call: int) -> None:
        if call > MAX_TURNS:
            raise AssertionError(f"the loop did not end within {MAX_TURNS} turns")
        action = self.at_turn.get(call)
        if action is not None:
            action()

    def run(self, until_caught_up: bool = True) -> str:
        return self.pipeline.run(until_caught_up=until_caught_up)


def test_a_backlog_is_delivered_committed_and_caught_up() -> None:
    log = {P0: encoded_events(30), P1: encoded_events(20, seed=8)}
    harness = Harness(live_config(batch={"max_events": 7}), log)
    assert harness.run() == "caught_up"
    assert harness.source.commits == {P0: 30, P1: 20}
    assert harness.pipeline.summary.read == 50
    assert harness.pipeline.summary.delivered == 50
    assert all(len(batch.items) <= 7 for batch in harness.delivery.submitted)
    assert not harness.dead_letters.letters
    assert harness.source.closed


def test_a_backlog_read_to_its_end_is_sent_without_waiting_out_the_linger() -> None:
    harness = Harness(live_config(batch={"linger_ms": 600_000}), {P0: encoded_events(30)})
    began = harness.pipeline._clock.monotonic()
    assert harness.run() == "caught_up"
    assert harness.source.commits == {P0: 30}
    assert harness.pipeline._clock.monotonic() - began < 60  # not the 600 s linger


def test_caught_up_waits_for_the_answers_of_batches_in_flight() -> None:
    harness = Harness(live_config(), {P0: encoded_events(12)}, hold=True)
    seen: dict[str, Any] = {}

    def look_then_answer() -> None:
        seen["commits"] = dict(harness.source.commits)
        seen["held"] = sum(len(batch.items) for batch in harness.delivery.held)
        harness.delivery.hold = False
        harness.delivery.release()

    harness.at_turn[300] = look_then_answer
    assert harness.run() == "caught_up"
    assert seen["held"] > 0
    assert seen["commits"].get(P0, 0) < 12  # nothing past the unanswered events
    assert harness.source.consume_calls >= 300  # not caught up before the answer came
    assert harness.source.commits == {P0: 12}


def test_the_pending_gauges_count_the_events_in_flight_and_age_the_oldest() -> None:
    harness = Harness(
        live_config(kafka={"commit_interval_s": 0.001}, batch={"max_events": 5}),
        {P0: encoded_events(12)},
        hold=True,
    )
    seen: dict[str, Any] = {}
    sample = harness.pipeline.metrics.registry.get_sample_value

    def look_then_answer() -> None:
        held = [item for batch in harness.delivery.held for item in batch.items]
        seen["held"] = len(held)
        seen["oldest_s"] = min(item.timestamp_ms for item in held) / 1000
        seen["pending"] = sample("capi_consumer_pending_events")
        seen["age"] = sample("capi_consumer_oldest_undelivered_event_age_seconds")
        seen["now"] = harness.pipeline._clock.time()
        harness.delivery.hold = False
        harness.delivery.release()

    harness.at_turn[300] = look_then_answer
    assert harness.run() == "caught_up"
    assert seen["held"] == 12
    assert seen["pending"] == 12
    age_then = seen["now"] - seen["oldest_s"]
    assert age_then - 1 < seen["age"] <= age_then  # measured a few clock ticks before


def test_backpressure_pauses_at_the_pending_limit_and_resumes_once_answered() -> None:
    config = live_config(
        kafka={"consume_batch_size": 5},
        batch={"max_events": 5},
        delivery={"max_pending_events": 10},
    )
    harness = Harness(config, {P0: encoded_events(40)}, hold=True)
    seen: dict[str, Any] = {}

    def look_then_answer() -> None:
        seen["paused"] = set(harness.source.paused)
        seen["read"] = harness.pipeline.summary.read
        harness.delivery.hold = False
        harness.delivery.release()

    harness.at_turn[50] = look_then_answer
    assert harness.run() == "caught_up"
    assert seen["paused"] == {P0}
    assert seen["read"] <= 10 + 5  # the limit, plus what one consume call may still return
    assert harness.source.resume_calls >= 1
    assert harness.source.commits == {P0: 40}


def test_paused_partitions_resume_only_once_half_the_pending_limit_is_settled() -> None:
    # A pause drops librdkafka's prefetched records: resuming at the first answer would pause
    # again at the next batch and fetch the same records over and over.
    config = live_config(
        kafka={"consume_batch_size": 5},
        batch={"max_events": 5},
        delivery={"max_pending_events": 20},
    )
    harness = Harness(config, {P0: encoded_events(60)}, hold=True)
    delivery = harness.delivery
    seen: dict[str, Any] = {}

    def answer_one() -> None:
        batch = delivery.held.pop(0)
        delivery.results.put(BatchResult(batch, delivered=list(batch.items), requests=1))

    def look(name: str, then: Callable[[], None]) -> Callable[[], None]:
        def step() -> None:
            seen[name] = (set(harness.source.paused), harness.source.resume_calls)
            then()

        return step

    def answer_all() -> None:
        delivery.hold = False
        delivery.release()

    harness.at_turn[30] = look("at the limit", answer_one)  # 20 pending → 15
    harness.at_turn[60] = look("15 pending", answer_one)  # → 10: half the limit
    harness.at_turn[90] = look("10 pending", answer_all)
    assert harness.run() == "caught_up"
    assert seen["at the limit"] == ({P0}, 0)
    assert seen["15 pending"] == ({P0}, 0)
    assert seen["10 pending"][1] == 1  # resumed (and, refilled to the limit, paused again)
    assert harness.source.commits == {P0: 60}


def test_a_retrying_delivery_pauses_consumption() -> None:
    harness = Harness(live_config(kafka={"consume_batch_size": 5}), {P0: encoded_events(20)})
    harness.delivery.retrying = True
    seen: dict[str, Any] = {}

    def look_then_recover() -> None:
        seen["paused"] = set(harness.source.paused)
        seen["read"] = harness.pipeline.summary.read
        harness.delivery.retrying = False

    harness.at_turn[20] = look_then_recover
    assert harness.run() == "caught_up"
    assert seen == {"paused": {P0}, "read": 5}
    assert harness.source.commits == {P0: 20}


def test_a_revoke_mid_batch_drops_unsent_events_and_commits_only_what_is_settled() -> None:
    # A long linger: the events wait in the batcher when the partition is taken away.
    config = live_config(batch={"linger_ms": 600_000})
    harness = Harness(config, {P0: encoded_events(6), P1: encoded_events(4, seed=8)})
    seen: dict[str, Any] = {}

    def revoke_p0() -> None:
        seen["read"] = harness.pipeline.summary.read
        harness.source.revoke([P0])

    harness.at_turn[3] = revoke_p0
    harness.at_turn[6] = harness.pipeline.request_stop
    assert harness.run(until_caught_up=False) == "stopped"
    assert seen["read"] == 10
    assert harness.delivery.sent_offsets(P0) == []  # the new owner reads them again
    assert P0 not in harness.source.commits
    assert sorted(harness.delivery.sent_offsets(P1)) == [0, 1, 2, 3]
    assert harness.source.commits == {P1: 4}  # flushed and committed on the way out


def test_a_revoke_waits_for_batches_in_flight_and_commits_their_offsets() -> None:
    config = live_config(kafka={"consume_batch_size": 10}, batch={"max_events": 10})
    harness = Harness(config, {P0: encoded_events(10), P1: encoded_events(3, seed=8)}, hold=True)

    def revoke_p0() -> None:
        assert harness.delivery.sent_offsets(P0) == list(range(10))  # in flight, unanswered
        harness.delivery.answer_when_waited_on()
        harness.source.revoke([P0])

    harness.at_turn[3] = revoke_p0
    harness.at_turn[6] = harness.pipeline.request_stop
    assert harness.run(until_caught_up=False) == "stopped"
    assert harness.source.commits[P0] == 10
    assert harness.pipeline.summary.delivered == 13


def test_the_dlq_breaker_stops_the_run() -> None:
    config = live_config(dlq={"window": 10, "max_ratio": 0.5})
    harness = Harness(config, {P0: [b"not avro"] * 30})
    assert harness.run(until_caught_up=False) == "breaker"
    failure = harness.pipeline.failure
    assert isinstance(failure, DlqBreakerTripped)
    assert failure.exit_reason == "breaker"
    letters = harness.dead_letters.letters
    assert 6 <= len(letters) <= 30
    assert {letter.reason for letter in letters} == {"undecodable"}
    assert harness.source.commits.get(P0, 0) <= len(letters)


def test_a_bounded_run_reads_its_range_and_commits_nothing_past_its_end() -> None:
    gate = Gate(
        start_offsets={P0: 2},
        end_offsets={P0: 8, P1: 0},
        partitions=frozenset({P0}),
        accept=lambda record: record.offset() != 5,
        commit_metadata="snapshot",
    )
    harness = Harness(
        live_config(), {P0: encoded_events(12), P1: encoded_events(3, seed=8)}, gate=gate
    )
    assert harness.run(until_caught_up=False) == "caught_up"
    assert sorted(harness.delivery.sent_offsets(P0)) == [2, 3, 4, 6, 7]
    assert harness.pipeline.summary.read == 6  # offsets 2..7
    assert harness.pipeline.summary.filtered == 1  # offset 5, refused by `accept`
    assert harness.source.commits == {P0: 8, P1: 0}  # P1: its end is 0
    assert harness.source.commit_metadata == {"snapshot"}
    assert harness.source.paused >= {P0, P1}  # each partition paused at its end
    assert harness.delivery.sent_offsets(P1) == []


def test_a_bounded_run_commits_nothing_unanswered_when_its_end_comes_with_the_records() -> None:
    # One consume call returns offsets 0-11; 8 is the end: the end must not let the position
    # jump over 0-7 while their batch is unanswered.
    harness = Harness(
        live_config(kafka={"commit_interval_s": 0.001}),
        {P0: encoded_events(12)},
        gate=Gate(end_offsets={P0: 8}),
        hold=True,
    )
    seen: dict[str, Any] = {}

    def look_then_answer() -> None:
        seen["commits"] = dict(harness.source.commits)
        seen["held"] = sum(len(batch.items) for batch in harness.delivery.held)
        harness.delivery.hold = False
        harness.delivery.release()

    harness.at_turn[300] = look_then_answer
    assert harness.run(until_caught_up=False) == "caught_up"
    assert seen == {"commits": {}, "held": 8}
    assert harness.source.commits == {P0: 8}


def test_a_dry_run_maps_but_sends_and_commits_nothing() -> None:
    sample: list[dict[str, Any]] = []
    gate = Gate(end_offsets={P0: 10}, dry_run=True, on_dry_run_event=sample.append)
    harness = Harness(live_config(), {P0: encoded_events(10)}, gate=gate)
    assert harness.run(until_caught_up=False) == "caught_up"
    assert harness.delivery.submitted == []
    assert harness.source.commits == {}
    assert len(sample) == harness.pipeline.summary.mapped > 0
    assert all(event["id"] and event["type"] for event in sample)  # mapped CAPI events


@pytest.mark.parametrize("records_per_call", [1, 1000])
def test_every_record_is_read_once_whatever_the_consume_size(records_per_call: int) -> None:
    harness = Harness(
        live_config(kafka={"consume_batch_size": records_per_call}), {P0: encoded_events(25)}
    )
    assert harness.run() == "caught_up"
    offsets = sorted(item.offset for b in harness.delivery.submitted for item in b.items)
    assert len(offsets) == len(set(offsets)) == harness.pipeline.summary.delivered
    assert harness.source.commits == {P0: 25}


def test_the_inspector_sees_every_settled_event_when_enabled() -> None:
    log: dict[TopicPartitionKey, list[bytes | None]] = {P0: [*encoded_events(5), b"not avro"]}
    harness = Harness(live_config(inspector={"enabled": True}), log)
    assert harness.run() == "caught_up"
    inspector = harness.pipeline.inspector
    assert inspector is not None
    snapshot = inspector.snapshot()
    assert snapshot["counts"]["delivered"] == 5
    assert snapshot["counts"]["dead_lettered"] == 1
    assert {event["reason"] for event in snapshot["events"]} == {None, "undecodable"}
