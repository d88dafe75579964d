"""Whether Kafka answers, and what an operator is told when it does not.

librdkafka reports a broker that is down once per connection attempt (tens of lines a second);
an operator needs each distinct problem once a minute, the topic a typo names, and a bounded
command that gives up with one line saying where it could not connect and why.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from consumer.errors import ConsumerError

# A live run repeats a distinct error at most this often.
REPEAT_INTERVAL_S = 60.0
_NUMBERS = re.compile(r"\d+")


class KafkaUnreachable(ConsumerError):
    """No broker answered within the bounded commands' wait (`kafka.unreachable_timeout_s`)."""

    def __init__(self, bootstrap_servers: str, cause: str) -> None:
        super().__init__(f"cannot reach Kafka at {bootstrap_servers}: {cause}")


class MissingTopics(ConsumerError):
    """Topics the broker does not know (a configuration error: exit 2)."""

    def __init__(self, topics: list[str]) -> None:
        self.topics = topics
        names = ", ".join(repr(topic) for topic in topics)
        super().__init__(
            f"topic {names} does not exist" if len(topics) == 1 else f"topics {names} do not exist"
        )


class Throttle:
    """`allow(key)` is true for a key at most once per `interval_s`."""

    def __init__(
        self, interval_s: float = REPEAT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[Any, float] = {}

    def allow(self, key: Any) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            return False
        if len(self._last) > 1000:  # bounded memory whatever librdkafka says
            self._last.clear()
        self._last[key] = now
        return True


def shape(text: str) -> str:
    """A message with its numbers blanked: `(after 0ms ...)` and `(after 3ms ...)` are one."""
    return _NUMBERS.sub("#", text)


class _RepeatFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._throttle = Throttle()

    def filter(self, record: logging.LogRecord) -> bool:
        return self._throttle.allow(shape(record.getMessage()))


def client_logger(name: str) -> logging.Logger:
    """The logger a Kafka client logs to: each distinct line at most once a minute."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _RepeatFilter) for f in logger.filters):
        logger.addFilter(_RepeatFilter())
    return logger


class ErrorCause:
    """An `error_cb` remembering the most telling recent error (`all brokers down` says less
    than the connection error that caused it)."""

    def __init__(self) -> None:
        self.last: str | None = None
        self.seen = 0  # errors reported so far

    def __call__(self, error: KafkaError) -> None:
        self.seen += 1
        if error.code() != KafkaError._ALL_BROKERS_DOWN or self.last is None:
            self.last = error.str()


def await_metadata(
    client: Any, bootstrap_servers: str, timeout_s: float, cause: ErrorCause | None = None
) -> Any:
    """Cluster metadata for all topics (naming none, so none is auto-created), asking until a
    broker answers; `KafkaUnreachable` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            return client.list_topics(timeout=max(0.1, min(remaining, 5.0)))
        except KafkaException as exc:
            error = exc.args[0]
            reason = error.str() if isinstance(error, KafkaError) else str(exc)
        client.poll(0)  # serves the error callbacks, which say why (refused, unknown host...)
        if time.monotonic() >= deadline:
            raise KafkaUnreachable(bootstrap_servers, (cause.last if cause else None) or reason)


def known_topics(metadata: Any) -> dict[str, list[int]]:
    """The topics cluster metadata holds without an error, with their partitions."""
    return {
        name: sorted(topic.partitions)
        for name, topic in metadata.topics.items()
        if topic.error is None and topic.partitions
    }


def missing_topics(known: Mapping[str, object], topics: Iterable[str]) -> list[str]:
    """The `topics` (each once, in order) that are not `known`."""
    return [topic for topic in dict.fromkeys(topics) if topic not in known]
