"""CA event dicts → record values: the Avro body (extras in `extra_properties`), framed for
Confluent's wire format when the decoder expects it."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import fastavro
import orjson

from consumer.avro.framing import EXTRA_FIELD, HEADER, MAGIC_BYTE, Record, escape
from consumer.avro.registry import (
    load_local_schema,
    registry_call,
    registry_client,
    uses_confluent_framing,
)
from consumer.config import SchemaSettings
from consumer.errors import EncodeError, RegistryRejected

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

_MISFIT: Final = object()
# (value, JSON Pointer of the value, extras to fill) -> the Avro datum, or _MISFIT.
_Fit = Callable[[Any, str, dict[str, str]], Any]
# Exact Python type of a JSON value → the range it must lie in (None: any).
_SCALARS: Final[dict[str, tuple[type, tuple[int, int] | None]]] = {
    "string": (str, None),
    "long": (int, (-(2**63), 2**63 - 1)),
    "int": (int, (-(2**31), 2**31 - 1)),
    "double": (float, None),
    "float": (float, None),
    "boolean": (bool, None),
}
# JSON has no bytes and never needs a null branch (an absent value is written as the default).
_NEVER_FIT: Final = frozenset({"null", "bytes", "fixed"})


def _scalars_fit(kinds: Iterable[str], in_union: bool = False) -> _Fit:
    """A value fits when its exact type is one the kinds accept (so True is not a long).

    In a union the datum is tagged `(branch name, value)`: fastavro's tuple notation, which
    spares it from validating the value against each branch to choose one.
    """
    accepted: dict[type, tuple[str, tuple[int, int] | None]] = {}
    for kind in kinds:
        python_type, bounds = _SCALARS[kind]
        accepted.setdefault(python_type, (kind, bounds))

    def fit(value: Any, _pointer: str, _extras: dict[str, str]) -> Any:
        found = accepted.get(type(value))
        if found is None:
            return _MISFIT
        kind, bounds = found
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            return _MISFIT
        return (kind, value) if in_union else value

    return fit


def _reject(_value: Any, _pointer: str, _extras: dict[str, str]) -> Any:
    return _MISFIT


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _union_name(branch: Any, namespace: str) -> str:
    """How fastavro's tuple notation names a union branch: full name, or the type."""
    if isinstance(branch, str):
        return _full_name(branch, namespace)
    if branch["type"] in ("record", "enum", "fixed"):
        return _full_name(branch["name"], branch.get("namespace", namespace))
    return str(branch["type"])


class _Fitter:
    """Turns a CA JSON event into a datum of the Avro schema, moving what does not fit into the
    extras map so the decoder can put it back exactly where it was."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._named: dict[str, _Fit] = {}
        self._top = self._compile(schema, namespace="", top=True)

    def fit(self, event: Mapping[str, Any]) -> Record:
        if type(event) is not dict:
            raise EncodeError("an event must be a JSON object")
        extras: dict[str, str] = {}
        record: Record = self._top(event, "", extras)
        record[EXTRA_FIELD] = extras
        return record

    def _compile(self, schema: Any, namespace: str, top: bool = False) -> _Fit:
        if isinstance(schema, list):
            return self._union(schema, namespace)
        if isinstance(schema, str):
            if schema in _SCALARS:
                return _scalars_fit([schema])
            if schema in _NEVER_FIT:
                return _reject
            name = _full_name(schema, namespace)
            named = self._named

            def fit_named(value: Any, pointer: str, extras: dict[str, str]) -> Any:
                # Looked up when called: a named type may refer to itself.
                return named.get(name, named.get(schema, _reject))(value, pointer, extras)

            return fit_named
        kind = schema["type"]
        if kind == "record":
            return self._record(schema, namespace, top)
        if kind == "array":
            return self._array(self._compile(schema["items"], namespace))
        if kind == "map":
            return self._map(self._compile(schema["values"], namespace))
        if kind == "enum":
            symbols = frozenset(schema["symbols"])
            return lambda v, _p, _e: v if type(v) is str and v in symbols else _MISFIT
        return self._compile(kind, namespace)  # {"type": "string", "logicalType": ...}

    def _union(self, branches: list[Any], namespace: str) -> _Fit:
        scalar_kinds = [b for b in branches if isinstance(b, str) and b in _SCALARS]
        others = [
            (_union_name(b, namespace), self._compile(b, namespace))
            for b in branches
            if not (isinstance(b, str) and (b in _SCALARS or b in _NEVER_FIT))
        ]
        scalar_fit = _scalars_fit(scalar_kinds, in_union=True) if scalar_kinds else _reject

        def fit(value: Any, pointer: str, extras: dict[str, str]) -> Any:
            fitted = scalar_fit(value, pointer, extras)
            if fitted is not _MISFIT:
                return fitted
            for name, branch in others:
                # A branch records extras only if it is the one that fits.
                scratch: dict[str, str] = {}
                fitted = branch(value, pointer, scratch)
                if fitted is not _MISFIT:
                    extras.update(scratch)
                    return (name, fitted)
            return _MISFIT

        return fit if others else scalar_fit

    def _record(self, schema: Mapping[str, Any], namespace: str, top: bool) -> _Fit:
        full_name = _full_name(schema["name"], namespace)
        namespace = schema.get("namespace", full_name.rpartition(".")[0])
        fields: list[_FieldFit] = []
        fit_record = self._record_fit(fields)
        self._named[full_name] = fit_record
        for field in schema["fields"]:
            if top and field["name"] == EXTRA_FIELD:
                continue
            field_type = field["type"]
            nullable = field_type == "null" or (
                isinstance(field_type, list) and "null" in field_type
            )
            fields.append(
                _FieldFit(
                    name=field["name"],
                    suffix="/" + escape(field["name"]),
                    fit=self._compile(field_type, namespace),
                    required=not nullable and "default" not in field,
                    scalar=_is_scalar(field_type),
                )
            )
        return fit_record

    @staticmethod
    def _record_fit(fields: list[_FieldFit]) -> _Fit:
        by_name: dict[str, _FieldFit] = {}
        required: list[_FieldFit] = []

        def fit(value: Any, pointer: str, extras: dict[str, str]) -> Any:
            if type(value) is not dict:
                return _MISFIT
            if not by_name:  # filled on first use: a recursive type's fields are complete by then
                by_name.update((field.name, field) for field in fields)
                required.extend(field for field in fields if field.required)
            out: Record = {}
            for key, field_value in value.items():
                field = by_name.get(key)
                if field is None:
                    extras[f"{pointer}/{escape(key)}"] = _json(field_value)
                elif field_value is not None:  # absent: the writer uses the default
                    fitted = field.fit(
                        field_value, "" if field.scalar else pointer + field.suffix, extras
                    )
                    if fitted is _MISFIT:
                        extras[pointer + field.suffix] = _json(field_value)
                    else:
                        out[key] = fitted
            for field in required:
                if field.name not in out:
                    raise EncodeError(f"{pointer + field.suffix}: required by the schema")
            return out

        return fit

    @staticmethod
    def _array(item_fit: _Fit) -> _Fit:
        def fit(value: Any, pointer: str, extras: dict[str, str]) -> Any:
            if type(value) is not list:
                return _MISFIT
            out = []
            for index, item in enumerate(value):
                fitted = item_fit(item, f"{pointer}/{index}", extras)
                if fitted is _MISFIT:
                    return _MISFIT
                out.append(fitted)
            return out

        return fit

    @staticmethod
    def _map(value_fit: _Fit) -> _Fit:
        def fit(value: Any, pointer: str, extras: dict[str, str]) -> Any:
            if type(value) is not dict:
                return _MISFIT
            out = {}
            for key, item in value.items():
                fitted = value_fit(item, f"{pointer}/{escape(key)}", extras)
                if fitted is _MISFIT:
                    return _MISFIT
                out[key] = fitted
            return out

        return fit


@dataclass(frozen=True, slots=True)
class _FieldFit:
    name: str
    suffix: str  # "/" + the escaped name: the field's pointer below its record's
    fit: _Fit
    required: bool
    scalar: bool  # its fit never needs the pointer


def _is_scalar(schema: Any) -> bool:
    if isinstance(schema, list):
        return all(_is_scalar(branch) for branch in schema)
    return isinstance(schema, str) and (schema in _SCALARS or schema in _NEVER_FIT)


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        raise EncodeError("a value cannot be represented as JSON") from None


class PlainEncoder:
    """CA event → plain Avro body with one schema."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._parsed = fastavro.parse_schema(dict(schema))
        self._fitter = _Fitter(schema)

    def encode(self, event: Mapping[str, Any], header: bytes = b"") -> bytes:
        record = self._fitter.fit(event)
        stream = io.BytesIO()
        stream.write(header)
        try:
            fastavro.schemaless_writer(stream, self._parsed, record)
        except (ValueError, TypeError) as exc:
            # The fitter lets through only what the schema accepts; fastavro's message would
            # quote the value, so only its kind is kept.
            raise EncodeError(f"not encodable with the schema ({type(exc).__name__})") from None
        return stream.getvalue()


class Encoder:
    """CA event dicts → record values in the wire format a `Decoder` with the same settings reads.

    With a registry, the project schema is registered (or looked up) under `<topic>-value` once per
    topic; Confluent framing without a registry writes schema id 0, which such a decoder ignores.
    """

    def __init__(
        self, settings: SchemaSettings, registry: SchemaRegistryClient | None = None
    ) -> None:
        self._schema = load_local_schema(settings)
        self._plain = PlainEncoder(self._schema)
        if registry is None and settings.registry_url and settings.wire_format != "plain":
            registry = registry_client(settings)
        self._confluent = uses_confluent_framing(settings, registry is not None)
        self._registry = registry if self._confluent else None
        self._headers: dict[str, bytes] = {}

    @property
    def wire_format(self) -> str:
        return "confluent" if self._confluent else "plain"

    def encode(self, event: Mapping[str, Any], topic: str) -> bytes:
        """Raises `EncodeError` for an event that is not encodable, `RegistryUnavailable` and
        `RegistryRejected` when the schema cannot be registered."""
        if not self._confluent:
            return self._plain.encode(event)
        header = self._headers.get(topic) or self._header(topic)
        return self._plain.encode(event, header)

    def _header(self, topic: str) -> bytes:
        schema_id = 0 if self._registry is None else self._register(topic)
        header = self._headers[topic] = HEADER.pack(MAGIC_BYTE, schema_id)
        return header

    def _register(self, topic: str) -> int:
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        assert self._registry is not None
        registry = self._registry
        subject = f"{topic}-value"
        schema = Schema(json.dumps(self._schema), "AVRO")
        what = f"registering the schema under {subject}"
        try:
            return int(registry_call(lambda: registry.register_schema(subject, schema), what))
        except SchemaRegistryError as exc:
            if exc.http_status_code not in (401, 403):
                raise RegistryRejected(f"{what}: {exc}") from exc
        # Auto-registration may be forbidden to this client: the schema may still be there.
        what = f"looking up the schema under {subject}"
        try:
            found = registry_call(lambda: registry.lookup_schema(subject, schema), what)
        except SchemaRegistryError as exc:
            raise RegistryRejected(f"{what}: {exc}") from exc
        if found.schema_id is None:
            raise RegistryRejected(f"{what}: the registry gave no schema id")
        return int(found.schema_id)
