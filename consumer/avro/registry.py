"""The project's local schema and the Schema Registry client."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import fastavro

import schemas
from consumer.config import SchemaSettings, settings_file
from consumer.errors import ConfigError, RegistryUnavailable

if TYPE_CHECKING:
    # Imported where used at run time: the registry client costs ~0.3 s to import, and a
    # consumer without a registry never needs it.
    from confluent_kafka.schema_registry import SchemaRegistryClient

_T = TypeVar("_T")
# The consumer retries a batch itself when the registry is down; the client's own retries only
# block the loop, so they are kept short unless the configuration says otherwise.
_REGISTRY_DEFAULTS: Final[dict[str, str | int | float | bool]] = {
    "max.retries": 1,
    "retries.wait.ms": 200,
    "timeout": 10,
}


def load_local_schema(settings: SchemaSettings) -> dict[str, Any]:
    """The configured local schema, parsed and checked; `ConfigError` when unusable."""
    try:
        schema = schemas.load_schema(settings.local_schema)
        fastavro.parse_schema(schema)
    except FileNotFoundError as exc:
        raise ConfigError("schema.local_schema", str(exc)) from None
    except (ValueError, TypeError, fastavro.schema.SchemaParseException) as exc:
        raise ConfigError("schema.local_schema", f"not a valid Avro schema: {exc}") from None
    return schema


def registry_client(settings: SchemaSettings) -> SchemaRegistryClient:
    """A Schema Registry client for `schema.registry_url` with `schema.registry_settings`."""
    if not settings.registry_url:
        raise ConfigError("schema.registry_url", "required")
    from confluent_kafka.schema_registry import SchemaRegistryClient

    secrets = settings_file(settings.registry_settings_file, "schema.registry_settings_file")
    conf = {
        **_REGISTRY_DEFAULTS,
        **settings.registry_settings,
        **secrets,
        "url": settings.registry_url,
    }
    try:
        return SchemaRegistryClient(conf)
    except (ValueError, TypeError) as exc:
        # The URL may carry credentials: never echo it.
        message = str(exc).replace(settings.registry_url, "<schema.registry_url>")
        raise ConfigError("schema.registry_settings", message) from None


def uses_confluent_framing(settings: SchemaSettings, has_registry: bool) -> bool:
    if settings.wire_format == "auto":
        return has_registry
    return settings.wire_format == "confluent"


def registry_call(call: Callable[[], _T], what: str) -> _T:
    """Run one registry request, sorting its failures into the three classes callers handle."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        return call()
    except SchemaRegistryError as exc:
        status = exc.http_status_code
        if status in (408, 429) or status >= 500:
            raise RegistryUnavailable(f"{what}: the registry answered HTTP {status}") from exc
        raise
    # Anything else is the transport (the client's HTTP library: refused, reset, timed out, TLS)
    # or a garbled answer: transient either way, and never a reason to dead-letter.
    except Exception as exc:
        raise RegistryUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
