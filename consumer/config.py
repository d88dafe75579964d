"""The one typed configuration: a YAML file, then `CAPI_CONSUMER_` environment overrides.

`CAPI_CONSUMER_KAFKA__BOOTSTRAP_SERVERS=host:9092` sets `kafka.bootstrap_servers`; `__` separates
levels. A value that parses as a JSON list, object or null is taken as that (lists, maps, null);
anything else stays a string and pydantic coerces it. Unknown keys are errors everywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)

from consumer.errors import ConfigError as ConfigError  # noqa: PLC0414 (re-exported)
from consumer.redaction import mask_userinfo
from transforms.settings import MappingSettings

ENV_PREFIX = "CAPI_CONSUMER_"
_SECRET_WORDS = (
    "password",
    "secret",
    "key",
    "token",
    "user.info",
    "credentials",
    "oauthbearer.config",
)
# Map keys kept as written in environment overrides when they hold a lower-case letter
# (`..._EVENT_MAPPING__PageView`): CA event names are case-sensitive, and CAPI field paths use
# `X` for the item index. An all-upper-case part, the usual spelling, is lowercased.
_CASE_KEPT_MAPS = ("event_mapping", "field_mapping")


# librdkafka settings of every consumer of the service (`run`, `backfill`, `dlq`), under
# `kafka.settings`, which overrides them.
KAFKA_CONSUMER_DEFAULTS: dict[str, str | int | float | bool] = {
    # The prefetch, bounded in bytes whatever the backlog and the partition count: memory
    # stays flat while the API is down (~120 MB); a drain's peak follows the events in flight
    # (`delivery.max_pending_events`), not the prefetch (docs/benchmarks.md).
    "queued.max.messages.kbytes": 8192,
    "fetch.max.bytes": 8 * 1024 * 1024,
    # How long librdkafka waits to fetch a partition again when that prefetch is full (its
    # default, 1000 ms, left the consumer idle ~70 % of the time with a backlog over many
    # partitions: the queue is full at every fetch). 10 ms keeps it fed at no memory cost.
    "fetch.queue.backoff.ms": 10,
    # How long a broker holds a fetch that found no data (librdkafka's default, 500 ms). Only
    # one fetch per broker is in flight, so while one holds only partitions already read to
    # their end, the others that the full prefetch had left out wait behind it: with 1,000
    # partitions half the drains idled ~40 % of their time. Costs ~20 small requests/s per
    # broker while idle.
    "fetch.wait.max.ms": 50,
}


def _env_key(part: str, keep_case: bool) -> str:
    return part if keep_case and part != part.upper() else part.lower()


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _secret_not_blank(value: SecretStr) -> SecretStr:
    _not_blank(value.get_secret_value())
    return value


# Pixel ids and API keys: an empty or blank one is a configuration error, not a runtime KeyError.
PixelId = Annotated[str, AfterValidator(_not_blank)]
ApiKeyValue = Annotated[SecretStr, AfterValidator(_secret_not_blank)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    bootstrap_servers: str | None = None
    group_id: str = "openai-capi-consumer"
    topics: list[str] = Field(default_factory=list)
    # Any librdkafka property (SASL/SSL, session.timeout.ms, ...); each client gets those that
    # apply to it (consumer/kafka_clients.py).
    settings: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # A mounted YAML/JSON map of librdkafka properties (sasl.password, ssl.key.password, ...)
    # merged over `settings`, so secrets stay out of the config file.
    secret_settings_file: str | None = None
    # Messages taken per consume() call; the unit of bulk decode and map.
    consume_batch_size: int = Field(default=1000, ge=1, le=100_000)
    commit_interval_s: float = Field(default=1.0, gt=0)
    # Bounded commands (`run --until-caught-up`, `backfill`, `produce`, `dlq`) give up when no
    # broker answered for this long; a live run keeps trying (and is not ready meanwhile).
    unreachable_timeout_s: float = Field(default=30.0, gt=0)


class SchemaSettings(_Section):
    registry_url: str | None = None
    registry_settings: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # The same for the Schema Registry client (basic.auth.user.info, ...).
    registry_settings_file: str | None = None
    local_schema: str = "schemas/tracking_event.avsc"
    # auto: Confluent framing when a registry is set, plain Avro otherwise.
    wire_format: Literal["auto", "confluent", "plain"] = "auto"
    # fastavro is the reference. native (the compiled reader built at install, ~4x faster)
    # and cavro (optional extra `fast`, ~2x) are each checked against fastavro on sample
    # records before they are trusted; auto = the fastest that is present and agrees.
    decoder: Literal["auto", "native", "cavro", "fastavro"] = "auto"


def settings_file(path: str | None, key: str) -> dict[str, str | int | float | bool]:
    """A YAML/JSON map of client properties from a (secret) file; ConfigError names `key`."""
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError:
        raise ConfigError(key, f"no such file: {path}") from None
    except yaml.YAMLError:
        raise ConfigError(key, f"{path} is not valid YAML or JSON") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in loaded.items()
    ):
        raise ConfigError(key, f"{path} must hold a map of property names to scalar values")
    return loaded


class Route(_Section):
    """Send events whose `field` (dotted CA path) equals one of `values` to another pixel."""

    field: str
    values: list[str]
    pixel_id: PixelId
    api_key: ApiKeyValue | None = None
    api_key_file: str | None = None


class CapiSettings(_Section):
    base_url: str = "https://bzr.openai.com"
    pixel_id: PixelId | None = None
    api_key: ApiKeyValue | None = None
    api_key_file: str | None = None
    integration_source: str = "openai-capi-consumer"
    routes: list[Route] = Field(default_factory=list)
    validate_only: bool = False


class RetrySettings(_Section):
    initial_backoff_s: float = Field(default=0.5, gt=0)
    max_backoff_s: float = Field(default=60.0, gt=0)
    # Retry-After is honoured up to this many seconds.
    max_retry_after_s: float = Field(default=300.0, gt=0)


class BatchSettings(_Section):
    max_events: int = Field(default=1000, ge=1, le=1000)
    max_bytes: int = Field(default=4_000_000, ge=1024)
    linger_ms: int = Field(default=1000, ge=0)


class DeliverySettings(_Section):
    max_in_flight: int = Field(default=4, ge=1, le=256)
    timeout_s: float = Field(default=30.0, gt=0)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    # Check every event against the API's rules (transforms.capi_rules) before sending, not
    # only the time window. The mapping already emits valid events (property-tested), so this
    # is defence in depth at ~7 µs/event; on a 400 the rules are always checked before bisecting.
    validate_before_send: bool = False
    # Backpressure: partitions pause once this much is consumed but not settled, and resume
    # once half of it is settled. Each event in flight holds ~5 KB resident (its record, kept
    # for the DLQ, and its request bytes): 10,000 keeps a 1M-event drain under 250 MB.
    max_pending_events: int = Field(default=10_000, ge=1)
    max_pending_bytes: int = Field(default=64_000_000, ge=1024)
    # SIGTERM: time to flush and commit before closing.
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    # Partition revoke: time to settle in-flight work of the revoked partitions.
    revoke_grace_s: float = Field(default=10.0, ge=0)


class DlqSettings(_Section):
    topic: str = "openai-capi-consumer-dlq"
    max_ratio: float = Field(default=0.5, gt=0, le=1)
    window: int = Field(default=1000, ge=1)
    # librdkafka properties for the DLQ producer only (over the kafka.settings for producers).
    producer_settings: dict[str, str | int | float | bool] = Field(default_factory=dict)


class ObservabilitySettings(_Section):
    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(default=9464, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # None: json when stderr is not a terminal, text when it is.
    log_format: Literal["json", "text"] | None = None


class InspectorSettings(_Section):
    """The events inspector (`GET /inspector` on the observability port): off by default. It
    shows mapped payloads (identities masked): never expose it outside the cluster."""

    enabled: bool = False
    # The newest events kept in memory (a ring); the counters count every event since start.
    max_events: int = Field(default=500, ge=1, le=100_000)


class AppConfig(MappingSettings):
    """The whole file: the mapping keys at the top level, then one section per concern."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    schema_: SchemaSettings = Field(default_factory=SchemaSettings, alias="schema")
    capi: CapiSettings = Field(default_factory=CapiSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    dlq: DlqSettings = Field(default_factory=DlqSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    inspector: InspectorSettings = Field(default_factory=InspectorSettings)
    # Dotted key → the environment variable that set it (`load_config`), for error messages.
    _env_sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _ignore_the_sandbox(cls, data: Any) -> Any:
        """The sandbox's own section (consumer/sandbox/settings.py) may share the file."""
        if isinstance(data, dict) and "sandbox" in data:
            return {key: value for key, value in data.items() if key != "sandbox"}
        return data

    @model_validator(mode="after")
    def _one_key_source(self) -> AppConfig:
        if self.capi.api_key is not None and self.capi.api_key_file is not None:
            raise ValueError("capi.api_key and capi.api_key_file are exclusive")
        return self

    @property
    def schema_settings(self) -> SchemaSettings:
        return self.schema_

    def kafka_client_settings(self) -> dict[str, Any]:
        """`kafka.settings` with `kafka.secret_settings_file` merged over it, plus bootstrap."""
        merged: dict[str, Any] = {"bootstrap.servers": self.kafka.bootstrap_servers}
        merged.update(self.kafka.settings)
        merged.update(settings_file(self.kafka.secret_settings_file, "kafka.secret_settings_file"))
        return merged

    def kafka_consumer_settings(self) -> dict[str, Any]:
        """`kafka_client_settings` over the service's consumer defaults."""
        merged: dict[str, Any] = dict(KAFKA_CONSUMER_DEFAULTS)
        merged.update(self.kafka_client_settings())
        return merged

    def registry_client_settings(self) -> dict[str, Any]:
        """`schema.registry_settings` with `schema.registry_settings_file` merged over it."""
        merged: dict[str, Any] = dict(self.schema_.registry_settings)
        merged.update(
            settings_file(self.schema_.registry_settings_file, "schema.registry_settings_file")
        )
        return merged

    def require_for_run(self, need_api_key: bool = True) -> None:
        """What `run`, `backfill` and `dlq replay` need beyond the mapping keys; every missing
        piece is reported at once. A dry run sends nothing: `need_api_key=False`."""
        problems: list[tuple[str, str]] = []
        if not self.kafka.bootstrap_servers:
            problems.append(("kafka.bootstrap_servers", "required"))
        if not self.kafka.topics:
            problems.append(("kafka.topics", "at least one topic is required"))
        for index, topic in enumerate(self.kafka.topics):
            if not topic.strip():
                problems.append((f"kafka.topics.{index}", "must not be empty"))
        if self.capi.pixel_id is None and not self.capi.routes:
            problems.append(("capi.pixel_id", "required (or capi.routes)"))
        key_file = self.capi.api_key_file
        if need_api_key and self.capi.api_key is None and key_file is None:
            problems.append(("capi.api_key", "required (or capi.api_key_file)"))
        if need_api_key and key_file is not None and not Path(key_file).is_file():
            problems.append(("capi.api_key_file", f"no such file: {key_file}"))
        client_settings: dict[str, Any] = {}
        for check in (self.registry_client_settings, self.kafka_client_settings):
            try:
                client_settings = check()
            except ConfigError as exc:
                problems.extend(exc.problems)
        strategy = str(client_settings.get("partition.assignment.strategy", ""))
        if "cooperative" in strategy:
            # Commits on revoke, pause/resume and bounded runs assume the eager protocol.
            problems.append(
                (
                    "kafka.settings.partition.assignment.strategy",
                    "cooperative rebalancing is not supported; use range or roundrobin",
                )
            )
        if self.inspector.enabled and not self.observability.enabled:
            problems.append(
                ("inspector.enabled", "needs observability.enabled (it is served on that port)")
            )
        for index, route in enumerate(self.capi.routes):
            key_source = route.api_key or route.api_key_file
            if need_api_key and key_source is None and self.capi.api_key is None and not key_file:
                problems.append((f"capi.routes.{index}.api_key", "required"))
        if problems:
            raise ConfigError.of(problems, self._env_sources)


def env_overrides(
    environ: Mapping[str, str], sources: dict[str, str] | None = None
) -> dict[str, Any]:
    """`CAPI_CONSUMER_A__B=v` → `{"a": {"b": v}}`; JSON lists, objects and null are decoded.
    `sources` receives each dotted key set and the variable that set it."""
    tree: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or len(name) == len(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        top = parts[0].lower()
        path = [top] + [_env_key(part, keep_case=top in _CASE_KEPT_MAPS) for part in parts[1:]]
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(path), f"conflicts with {name}")
            node = child
        node[path[-1]] = _env_value(raw)
        if sources is not None:
            sources[".".join(path)] = name
    return tree


def _env_value(raw: str) -> Any:
    stripped = raw.strip()
    if stripped[:1] in ("[", "{") or stripped == "null":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return raw
    return raw


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_Model = TypeVar("_Model", bound=BaseModel)


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read the YAML file (optional), apply the environment, validate. Raises `ConfigError`."""
    sources: dict[str, str] = {}
    config = validated(AppConfig, read_config_data(path, environ, sources), sources=sources)
    config._env_sources = sources
    return config


def read_config_data(
    path: str | Path | None,
    environ: Mapping[str, str] | None = None,
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The YAML file (optional) with the `CAPI_CONSUMER_` environment merged over it, not yet
    validated. Raises `ConfigError`."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                "", f"configuration error: cannot read {path}: {exc.strerror}"
            ) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            # Only the position and the problem: PyYAML's text quotes the line, maybe a secret.
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "syntax error"
            raise ConfigError(
                "", f"configuration error: {path} is not valid YAML{where}: {problem}"
            ) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("", f"configuration error: {path}: the top level must be a mapping")
        data = loaded
    return _merge(data, env_overrides(os.environ if environ is None else environ, sources))


def validated(
    model: type[_Model], data: Any, section: str = "", sources: Mapping[str, str] | None = None
) -> _Model:
    """`data` as `model`; every error, as a `ConfigError` naming the keys (under `section`) and
    the environment variables they came from (`sources`)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = {_problem(error, section) for error in exc.errors()}
        raise ConfigError.of(sorted(problems), sources or {}) from None


def _problem(error: Any, section: str) -> tuple[str, str]:
    """(dotted key, message) of one pydantic error."""
    key = ".".join([section] * bool(section) + [str(part) for part in error["loc"]])
    message = str(error["msg"])
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        message = "unknown key"
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return key or "(top level)", message


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def masked(config: BaseModel) -> dict[str, Any]:
    """The effective configuration as plain data, every secret replaced by `***`."""

    def walk(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: walk(v, str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, SecretStr):
            return "***"
        if node is not None and key and is_secret_key(key) and not key.endswith("_file"):
            return "***"
        if isinstance(node, str):
            return mask_userinfo(node)  # https://user:pw@host → https://***@host
        return node

    dumped = config.model_dump(by_alias=True)
    return {k: walk(v) for k, v in dumped.items()}
