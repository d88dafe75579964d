"""Kafka errors are told once a minute each, a recovery once; readiness follows the broker."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from consumer.config import AppConfig
from consumer.live.pipeline import Pipeline
from consumer.live.reachability import Throttle, shape


def test_throttle_lets_each_key_through_once_a_minute() -> None:
    now = [0.0]
    throttle = Throttle(60.0, clock=lambda: now[0])
    assert throttle.allow("a")
    assert throttle.allow("b")
    now[0] = 59.9
    assert not throttle.allow("a")
    now[0] = 60.0
    assert throttle.allow("a")


def test_messages_differing_only_by_numbers_are_one_error() -> None:
    assert shape("failed (after 0ms in state CONNECT)") == shape(
        "failed (after 12ms in state CONNECT)"
    )


def test_brokers_down_then_a_response_logs_one_recovery_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = AppConfig.model_validate(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"]},
            "capi": {"pixel_id": "p", "api_key": "k"},
        }
    )
    pipeline = Pipeline(config)
    try:
        caplog.set_level(logging.INFO, logger="consumer.pipeline")
        pipeline._note_reachable()
        pipeline._missing_topics = []
        pipeline._group_joined = True
        assert pipeline.readiness() == (True, "ok")
        down = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")
        for _ in range(50):
            pipeline._on_kafka_error(down)
        assert pipeline.readiness() == (False, "Kafka not reachable")
        pipeline._note_reachable()
        pipeline._note_reachable()
        assert pipeline.readiness() == (True, "ok")
    finally:
        pipeline._dlq.close()
    told = [
        (r.getMessage(), getattr(r, "error", None))
        for r in caplog.records
        if r.name == "consumer.pipeline" and getattr(r, "error", None) != "_TRANSPORT"
    ]
    assert told == [("kafka client error", "_ALL_BROKERS_DOWN"), ("Kafka reachable again", None)]
