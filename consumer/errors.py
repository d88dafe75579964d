"""One root for every error the service raises on purpose, and the conditions that end a run
as values: the loop keeps the first `FatalError` it meets and stops with its `exit_reason`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from consumer.codes import ExitReason


class ConsumerError(Exception):
    """The root: anything else escaping the service is a bug (exit 1)."""


class ConfigError(ConsumerError):
    """A configuration that cannot be used; `str()` is what is shown to the user: one line per
    problem, `configuration error: <key>: <message>`, sorted by key."""

    def __init__(self, key: str, message: str, *more: tuple[str, str]) -> None:
        self.problems = sorted([(key, message), *more]) if more else [(key, message)]
        self.key = self.problems[0][0]
        super().__init__(
            "\n".join(f"configuration error: {k}: {m}" if k else m for k, m in self.problems)
        )

    @classmethod
    def of(cls, problems: list[tuple[str, str]], sources: Mapping[str, str]) -> ConfigError:
        """All `problems`, each naming the environment variable its key came from, if any."""
        (key, message), *more = [(k, m + _env_note(k, sources)) for k, m in problems]
        return cls(key, message, *more)


def _env_note(key: str, sources: Mapping[str, str]) -> str:
    """` (from CAPI_CONSUMER_…)` when `key` or a section holding it was set in the environment."""
    for path, name in sources.items():
        if key == path or key.startswith(path + "."):
            return f" (from {name})"
    return ""


class RegistryUnavailable(ConsumerError):
    """The Schema Registry is unreachable or failing: transient, retry the same batch later."""


class RegistryRejected(ConsumerError):
    """The Schema Registry refused the request (credentials, permissions, incompatible schema)."""


class EncodeError(ConsumerError, ValueError):
    """An event that cannot be encoded; the message names no value."""


class SourceError(ConsumerError):
    """A Kafka request of the source failed (a commit, offsets, watermarks); `str()` is
    librdkafka's description."""


class FatalError(ConsumerError):
    """A condition no retry can fix: the run stops, with `exit_reason`."""

    exit_reason: ClassVar[ExitReason] = "error"


class FatalDeliveryError(FatalError):
    """The API refuses the credentials or the pixel: nothing behind it can succeed."""

    exit_reason = "fatal"

    def __init__(self, pixel_id: str, status: int, message: str) -> None:
        self.pixel_id = pixel_id
        self.status = status
        super().__init__(f"CAPI answered {status} for pixel {pixel_id}: {message}")


class RegistryRefused(FatalError):
    """The Schema Registry refused for good (`RegistryRejected` while decoding)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the schema registry refused the request: {detail}")


class DeadLetterTopicRefused(FatalError):
    """The dead-letter topic refuses writes for good (a permanent or fatal Kafka error)."""

    def __init__(self, error_name: str) -> None:
        super().__init__(f"the dead-letter topic refuses writes: {error_name}")


class DlqBreakerTripped(FatalError):
    """Too many events dead-lettered: something upstream is broken; stop rather than drain the
    topic into the DLQ (exit 4)."""

    exit_reason = "breaker"

    def __init__(self, dead_lettered: int, window: int, max_ratio: float) -> None:
        super().__init__(
            f"DLQ breaker: {dead_lettered} of the last {window} events dead-lettered "
            f"(more than {max_ratio:.0%})"
        )
