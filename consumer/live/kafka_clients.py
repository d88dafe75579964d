"""Which librdkafka properties apply to which client.

`kafka.settings` holds properties for every client of the service; a producer given a
consumer-only property (or the reverse) ignores it with a `CONFWARN` line at every start. Each
client gets only what applies to it. The lists follow librdkafka's CONFIGURATION.md (the C and
P columns); a property in neither list applies to both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

CONSUMER_ONLY: Final = frozenset(
    {
        "group.id",
        "group.instance.id",
        "group.protocol",
        "group.protocol.type",
        "group.remote.assignor",
        "partition.assignment.strategy",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "coordinator.query.interval.ms",
        "max.poll.interval.ms",
        "enable.auto.commit",
        "auto.commit.enable",
        "auto.commit.interval.ms",
        "enable.auto.offset.store",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "fetch.wait.max.ms",
        "fetch.queue.backoff.ms",
        "fetch.message.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.max.bytes",
        "fetch.min.bytes",
        "fetch.error.backoff.ms",
        "offset.store.method",
        "offset.store.path",
        "offset.store.sync.interval.ms",
        "isolation.level",
        "enable.partition.eof",
        "check.crcs",
        "auto.offset.reset",
        "consume.callback.max.messages",
    }
)

PRODUCER_ONLY: Final = frozenset(
    {
        "transactional.id",
        "transaction.timeout.ms",
        "enable.idempotence",
        "enable.gapless.guarantee",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "queue.buffering.max.ms",
        "queue.buffering.backpressure.threshold",
        "linger.ms",
        "message.send.max.retries",
        "retries",
        "compression.codec",
        "compression.type",
        "compression.level",
        "batch.num.messages",
        "batch.size",
        "delivery.report.only.error",
        "sticky.partitioning.linger.ms",
        "request.required.acks",
        "acks",
        "request.timeout.ms",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "queuing.strategy",
        "produce.offset.report",
        "partitioner",
    }
)


def producer_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` without the consumer-only properties."""
    return {name: value for name, value in settings.items() if name not in CONSUMER_ONLY}


def consumer_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` without the producer-only properties."""
    return {name: value for name, value in settings.items() if name not in PRODUCER_ONLY}
