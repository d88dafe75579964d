"""Each Kafka client gets only the librdkafka properties that apply to it: no CONFWARN."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import Consumer

from consumer.config import AppConfig
from consumer.live.kafka_clients import consumer_settings
from consumer.live.pipeline import Pipeline

USER_SETTINGS = {
    "session.timeout.ms": 10000,
    "heartbeat.interval.ms": 1000,
    "auto.offset.reset": "latest",
    "max.poll.interval.ms": 600000,
    "fetch.min.bytes": 1,
    "linger.ms": 50,
    "compression.type": "zstd",
    "socket.keepalive.enable": True,
}


def confwarns(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "CONFWARN" in r.getMessage()]


def test_the_dlq_producer_gets_no_consumer_property(caplog: pytest.LogCaptureFixture) -> None:
    config = AppConfig.model_validate(
        {
            "kafka": {
                "bootstrap_servers": "127.0.0.1:1",
                "topics": ["t"],
                "settings": USER_SETTINGS,
            },
            "capi": {"pixel_id": "p", "api_key": "k"},
        }
    )
    caplog.set_level(logging.DEBUG, logger="librdkafka")
    pipeline = Pipeline(config)
    pipeline._dlq.poll()  # serves the log queue
    pipeline._dlq.close()
    assert confwarns(caplog) == []


def test_consumers_get_no_producer_property(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("librdkafka.test")
    caplog.set_level(logging.DEBUG, logger="librdkafka.test")
    settings = {"bootstrap.servers": "127.0.0.1:1", **USER_SETTINGS}
    consumer = Consumer({**consumer_settings(settings), "group.id": "g", "logger": logger})
    consumer.poll(0)
    consumer.close()
    assert confwarns(caplog) == []
