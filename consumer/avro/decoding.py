"""Kafka record values ⇄ Commanders Act event dicts, a batch at a time.

Two wire formats: Confluent (magic byte 0, 4-byte big-endian schema id, Avro body) with the writer
schema fetched from a Schema Registry by id and resolved to the project's schema, or plain Avro
written with the local schema. Decoded events have the CA JSON shape the transforms read
(`event["context"]["page"]["url"]`); `null` stands for an absent field.

Properties the schema does not name (and values whose type does not fit their field) travel in the
`extra_properties` map, keyed by their JSON Pointer (RFC 6901) in the CA event, valued by their
JSON text; decoding puts them back in place, so the round trip loses nothing.

Decoding was most of the pipeline's CPU: schemas are parsed once (per writer schema id), bodies are
read in place from the message bytes, and the faster readers (the compiled one, then cavro) are
used only after they have produced exactly fastavro's output on sample records. The pipeline
goes further with `Decoder.projector`: the compiled reader reads only the values the mapping
needs, and never builds the event at all.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import struct
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import fastavro
import orjson
from fastavro.schema import to_parsing_canonical_form
from fastavro.utils import generate_many

import schemas
from consumer.config import ConfigError, SchemaSettings, settings_file
from transforms.paths import PathReader

if TYPE_CHECKING:
    # Imported where used at run time: the registry client costs ~0.3 s to import, and a
    # consumer without a registry never needs it.
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

log = logging.getLogger(__name__)

EXTRA_FIELD: Final = "extra_properties"
MAGIC_BYTE: Final = 0
_HEADER: Final = struct.Struct(">BI")
# The registry answered "no such schema id": try it again after this long, not per message.
_UNKNOWN_ID_RETRY_S: Final = 60.0
# The consumer retries a batch itself when the registry is down; the client's own retries only
# block the loop, so they are kept short unless the configuration says otherwise.
_REGISTRY_DEFAULTS: Final[dict[str, str | int | float | bool]] = {
    "max.retries": 1,
    "retries.wait.ms": 200,
    "timeout": 10,
}
_SELF_CHECK_EVENTS: Final = 64
_SELF_CHECK_RANDOM: Final = 32
_SELF_CHECK_NOW_MS: Final = 1_773_892_800_000

Record = dict[str, Any]
_T = TypeVar("_T")
# (message bytes, offset of the Avro body) -> record; raises on any malformed input.
BodyDecoder = Callable[[bytes, int], Record]


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """A message whose bytes cannot be decoded; `message` never holds payload content."""

    reason: str
    message: str


class RegistryUnavailable(Exception):
    """The Schema Registry is unreachable or failing: transient, retry the same batch later."""


class RegistryRejected(Exception):
    """The Schema Registry refused the request (credentials, permissions, incompatible schema)."""


class EncodeError(ValueError):
    """An event that cannot be encoded; the message names no value."""


def _failure(message: str) -> DecodeFailure:
    return DecodeFailure(reason="undecodable", message=message)


_NO_VALUE: Final = _failure("the record has no value")
_NOT_CONFLUENT: Final = _failure(
    "not in Confluent wire format (expected magic byte 0 and a 4-byte schema id)"
)
_BAD_EXTRAS: Final = _failure(f"malformed {EXTRA_FIELD} entry")


class _TrailingBytesError(ValueError):
    pass


# --- schemas and the registry ----------------------------------------------------------------


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


def _uses_confluent_framing(settings: SchemaSettings, has_registry: bool) -> bool:
    if settings.wire_format == "auto":
        return has_registry
    return settings.wire_format == "confluent"


def _registry_call(call: Callable[[], _T], what: str) -> _T:
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


# --- body decoders ---------------------------------------------------------------------------


def _fastavro_decoder(writer: Any, reader: Any = None) -> BodyDecoder:
    read = fastavro.schemaless_reader
    bytes_io = io.BytesIO

    def decode(value: bytes, start: int) -> Record:
        # BytesIO over bytes shares the buffer: no copy of the message.
        stream = bytes_io(value)
        stream.seek(start)
        record: Record = read(stream, writer, reader)  # type: ignore[assignment]
        if stream.tell() != len(value):
            raise _TrailingBytesError
        return record

    return decode


# The compiled reader's opcodes (consumer/avro/_avro_reader.c).
_OPCODES: Final = {
    "null": 0, "boolean": 1, "int": 2, "long": 2, "float": 3, "double": 4, "bytes": 5,
    "string": 6, "record": 7, "enum": 8, "array": 9, "map": 10, "union": 11, "fixed": 12,
}  # fmt: skip
_MIN_BYTES: Final = {"null": 0, "float": 4, "double": 8}


class _NotCompilable(ValueError):
    """A schema the compiled reader does not take (recursive, logical types): use another."""


# Items that build more objects than they take bytes are charged against this many objects per
# message (the compiled reader's MAX_AMPLIFIED_OBJECTS; `_prescan` for the other readers).
_AMPLIFIED_OBJECTS: Final = 250_000


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A schema node compiled: the reader's program, the fewest bytes a datum takes, and the
    most objects (values, record entries) reading one builds, outside its arrays and maps."""

    program: tuple[Any, ...]
    min_bytes: int
    objects: int
    # The objects and 64-byte units of a random datum as fastavro's generate_many makes it
    # (arrays and maps of 10 items): whether sample records of the schema can be afforded.
    sample_cost: int


def _charge(item: _Compiled, overhead: int = 0) -> int:
    """What each item of an array (map: overhead 1, the key) charges against the per-message
    objects budget: its objects when they outnumber its bytes (a null item takes none), else 0."""
    objects, min_bytes = item.objects + overhead, item.min_bytes + overhead
    return objects if objects > min_bytes or min_bytes == 0 else 0


def _compile(schema: Any, logical_as_base: bool = False) -> _Compiled:
    """An Avro schema compiled (`_NotCompilable` when the compiled reader cannot read it).

    `logical_as_base`: logical types compile as their underlying type (for `_prescanner`, which
    only walks the bytes), instead of `_NotCompilable`.
    """
    named: dict[str, _Compiled] = {}
    defining: set[str] = set()

    def full_name(name: str, namespace: str) -> str:
        return name if "." in name or not namespace else f"{namespace}.{name}"

    def compile_node(node: Any, namespace: str) -> _Compiled:
        if isinstance(node, list):
            branches = [compile_node(branch, namespace) for branch in node]
            return _Compiled(
                (_OPCODES["union"], tuple(branch.program for branch in branches)),
                1 + min((branch.min_bytes for branch in branches), default=0),
                max((branch.objects for branch in branches), default=1),
                max((branch.sample_cost for branch in branches), default=1),
            )
        if isinstance(node, str):
            if node in _OPCODES and node not in {"record", "enum", "array", "map", "union"}:
                return _Compiled((_OPCODES[node],), _MIN_BYTES.get(node, 1), 1, 1)
            # A bare name means the one in the enclosing namespace first (fastavro, the spec),
            # even when a type of that name exists without a namespace.
            name = full_name(node, namespace)
            if name not in named and name not in defining:
                name = node
            if name in defining:
                raise _NotCompilable("recursive schema")
            if name not in named:
                raise _NotCompilable(f"unknown type {node}")
            return named[name]
        if not isinstance(node, dict) or ("logicalType" in node and not logical_as_base):
            raise _NotCompilable("logical types are converted by fastavro")
        kind = node.get("type")
        if kind in {"record", "error", "enum", "fixed"}:
            namespace = node.get("namespace", namespace)
            name = full_name(node["name"], namespace)
            namespace = name.rpartition(".")[0]
            defining.add(name)
            if kind == "enum":
                compiled = _Compiled((_OPCODES["enum"], tuple(node["symbols"])), 1, 1, 1)
            elif kind == "fixed":
                size = int(node["size"])
                compiled = _Compiled((_OPCODES["fixed"], size), size, 1, 1 + size // 64)
            else:
                fields = [compile_node(field["type"], namespace) for field in node["fields"]]
                names = tuple(sys.intern(field["name"]) for field in node["fields"])
                compiled = _Compiled(
                    (_OPCODES["record"], names, tuple(field.program for field in fields)),
                    sum(field.min_bytes for field in fields),
                    max(1, sum(field.objects for field in fields)),
                    1 + sum(field.sample_cost for field in fields),
                )
            defining.discard(name)
            named[name] = compiled
            return compiled
        if kind == "array":
            item = compile_node(node["items"], namespace)
            program = (_OPCODES["array"], item.program, item.min_bytes, _charge(item))
            return _Compiled(program, 1, 1, 1 + 10 * item.sample_cost)
        if kind == "map":
            value = compile_node(node["values"], namespace)
            program = (_OPCODES["map"], value.program, 1 + value.min_bytes, _charge(value, 1))
            return _Compiled(program, 1, 1, 1 + 10 * (1 + value.sample_cost))
        return compile_node(kind, namespace)

    return compile_node(schema, "")


def _program(schema: Any) -> tuple[tuple[Any, ...], int]:
    """The compiled reader's program for an Avro schema, and the fewest bytes a datum takes."""
    compiled = _compile(schema)
    return compiled.program, compiled.min_bytes


# --- budgets for untrusted input --------------------------------------------------------------
# Writer schemas come from a registry other teams register into, and bytes from any producer:
# neither may make preparing a schema or decoding one message cost more than a fraction of a
# second or a few tens of MB.

_MAX_SCHEMA_BYTES: Final = 64 * 1024
_MAX_SCHEMA_DEPTH: Final = 32
_MAX_FIXED_SIZE: Final = 1024 * 1024
# Values one datum builds outside its arrays and maps (a record of records that each use a
# named record twice doubles at every level: depth alone does not bound it).
_MAX_DATUM_OBJECTS: Final = 100_000
# Sample records (the readers' self-checks) only when 32 of them cost less than this many
# objects or 64-byte units; otherwise the check is skipped and fastavro reads the schema.
_MAX_SAMPLE_COST: Final = 100_000


def _writer_schema_problem(text: str, schema: Any) -> str | None:
    """Why a registered writer schema is refused before anything else is done with it, or None.

    Checked on the JSON alone: the size of its text, how deeply its types nest (records,
    arrays, maps, unions), the size of its `fixed` types."""
    if len(text.encode()) > _MAX_SCHEMA_BYTES:
        return f"the schema is larger than {_MAX_SCHEMA_BYTES // 1024} KiB"
    # Depth-first with an explicit stack: the JSON itself may nest deeper than Python recurses.
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, list):
            depth += 1
            stack.extend((branch, depth) for branch in node)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in ("record", "error", "array", "map"):
                depth += 1
            if kind == "fixed":
                size = node.get("size")
                if isinstance(size, int) and size > _MAX_FIXED_SIZE:
                    return f"a fixed type is larger than {_MAX_FIXED_SIZE // 1024 // 1024} MiB"
            children = [node.get("items"), node.get("values")]
            if isinstance(kind, (dict, list)):
                children.append(kind)
            fields = node.get("fields")
            if isinstance(fields, list):
                children.extend(f.get("type") for f in fields if isinstance(f, dict))
            stack.extend((child, depth) for child in children if child is not None)
        if depth > _MAX_SCHEMA_DEPTH:
            return f"its types nest deeper than {_MAX_SCHEMA_DEPTH}"
    return None


def _prescanner(compiled: _Compiled) -> Callable[[bytes, int], None] | None:
    """A check of a message's block counts against the bytes left and the per-message objects
    budget, run before cavro or fastavro decode it (they trust a count: an array of 2^56 nulls
    loops for ever or exhausts memory). The compiled reader checks the same as it reads.

    None when no message needs it: items that take at least as many bytes as the objects they
    build are bounded by the bytes. Otherwise messages too short to exceed the budget (the
    project's events, with their items) skip the walk too.
    """
    ratio = 0.0  # the most charged objects per byte of message
    seen: set[int] = set()
    stack = [compiled.program]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node[0] in (_OPCODES["array"], _OPCODES["map"]):
            if node[3]:
                ratio += node[3] / node[2] if node[2] else float("inf")
            stack.append(node[1])
        elif node[0] == _OPCODES["record"]:
            stack.extend(node[2])
        elif node[0] == _OPCODES["union"]:
            stack.extend(node[1])
    if not ratio:
        return None
    free_bytes = int(_AMPLIFIED_OBJECTS / ratio)
    program = compiled.program

    def prescan(value: bytes, start: int) -> None:
        if len(value) - start > free_bytes:
            _Scan(value, start).node(program)

    return prescan


class _Scan:
    """Walks an Avro body as the compiled reader does, building nothing: checks only what
    bounds the work (lengths, block counts, union indexes), and charges items as it does.
    Raises ValueError, as that reader does: the same dead letter whichever reader is in use."""

    def __init__(self, value: bytes, start: int) -> None:
        self._value, self._pos, self._end = value, start, len(value)
        self._objects_left = _AMPLIFIED_OBJECTS

    def long(self) -> int:
        value, shift, data = 0, 0, self._value
        while self._pos < self._end and shift < 70:
            byte = data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (value >> 1) ^ -(value & 1)
            shift += 7
        raise ValueError("truncated or overlong varint")

    def skip(self, size: int) -> None:
        if size < 0 or size > self._end - self._pos:
            raise ValueError("length past the end of the input")
        self._pos += size

    def node(self, node: tuple[Any, ...]) -> None:
        op = node[0]
        if op in (_OPCODES["long"], _OPCODES["enum"]):
            self.long()
        elif op in (_OPCODES["bytes"], _OPCODES["string"]):
            self.skip(self.long())
        elif op in (_OPCODES["boolean"], _OPCODES["float"], _OPCODES["double"]):
            self.skip({1: 1, 3: 4, 4: 8}[op])
        elif op == _OPCODES["fixed"]:
            self.skip(node[1])
        elif op == _OPCODES["record"]:
            for field in node[2]:
                self.node(field)
        elif op == _OPCODES["union"]:
            index = self.long()
            if not 0 <= index < len(node[1]):
                raise ValueError("union index out of range")
            self.node(node[1][index])
        elif op in (_OPCODES["array"], _OPCODES["map"]):
            self.blocks(node, is_map=op == _OPCODES["map"])

    def blocks(self, node: tuple[Any, ...], is_map: bool) -> None:
        item, min_bytes, charge = node[1], max(node[2], int(is_map)), node[3]
        while count := self.long():
            if count < 0:
                count = -count
                if self.long() < 0:  # the block's size in bytes: read, not trusted
                    raise ValueError("negative block size")
            if min_bytes and count > (self._end - self._pos) // min_bytes:
                raise ValueError("block count past the end of the input")
            charge = charge or (0 if min_bytes else 1)
            if charge:
                if count * charge > self._objects_left:
                    raise ValueError("too many objects for the input")
                self._objects_left -= count * charge
            for _ in range(count):
                if is_map:
                    self.skip(self.long())
                self.node(item)


def _guarded(decode: BodyDecoder, prescan: Callable[[bytes, int], None] | None) -> BodyDecoder:
    if prescan is None:
        return decode

    def guarded(value: bytes, start: int) -> Record:
        prescan(value, start)
        return decode(value, start)

    return guarded


# --- projection: the compiled reader reads only the values a mapping needs -----------------

Path = tuple[str, ...]
Values = tuple[Any, ...]
_PROJECT, _SKIP, _STORE, _INTO_RECORD, _INTO_UNION = 13, 14, 15, 16, 17
# A path's slot (None when only deeper paths start with it), and the paths below it.
_Trie = dict[str, tuple[list[int | None], "_Trie"]]


class _NotProjectable(ValueError):
    """Paths the projection cannot read as the whole decode would: decode whole records."""


def _trie(paths: Sequence[Path]) -> _Trie:
    root: _Trie = {}
    for slot, path in enumerate(paths):
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, ([None], {}))[1]
        node.setdefault(path[-1], ([None], {}))[0][0] = slot
    return root


def _projection(
    program: tuple[Any, ...],
    paths: Sequence[Path],
    items_slot: int | None,
    item_paths: Sequence[Path],
) -> tuple[Any, ...]:
    """The compiled reader's program (a PROJECT node, see consumer/avro/_avro_reader.c) that reads
    `paths` of a record of `program`, its item list (slot `items_slot`) as tuples of `item_paths`.

    A path reads None through anything but a record, as `PathReader` does on the decoded dict:
    so every part of the record that no path names is skipped (read and checked, never built).
    """
    if len(set(paths)) != len(paths) or len(set(item_paths)) != len(item_paths):
        raise _NotProjectable("a path is given twice")
    record, union, array, map_ = (_OPCODES[kind] for kind in ("record", "union", "array", "map"))

    def into(node: tuple[Any, ...], trie: _Trie, store: Callable[..., Any]) -> tuple[Any, ...]:
        if node[0] == record:
            targets = []
            for name, field in zip(node[1], node[2], strict=True):
                entry = trie.get(name)
                if entry is None:
                    targets.append((_SKIP, field))
                    continue
                (slot,), below = entry
                if not below:
                    assert slot is not None
                    targets.append(store(slot, field))
                elif slot is not None:
                    raise _NotProjectable("a path is also the start of another")
                else:
                    targets.append(into(field, below, store))
            return (_INTO_RECORD, tuple(targets))
        if node[0] == union:
            return (_INTO_UNION, tuple(into(branch, trie, store) for branch in node[1]))
        if node[0] == map_:
            raise _NotProjectable("a path goes through a map")
        return (_SKIP, node)

    def stored(slot: int, node: tuple[Any, ...]) -> tuple[Any, ...]:
        return (_STORE, slot, node)

    item_trie = _trie(item_paths)

    def item(node: tuple[Any, ...]) -> tuple[Any, ...]:
        if node[0] == record:
            return (_PROJECT, len(item_paths), into(node, item_trie, stored))
        if node[0] == union:
            return (union, tuple(item(branch) for branch in node[1]))
        return node  # decoded whole: the mapping reads records only

    def item_list(node: tuple[Any, ...]) -> tuple[Any, ...]:
        if node[0] == array:
            return (array, item(node[1]), *node[2:])
        if node[0] == union:
            return (union, tuple(item_list(branch) for branch in node[1]))
        return node

    def stored_or_items(slot: int, node: tuple[Any, ...]) -> tuple[Any, ...]:
        return (_STORE, slot, item_list(node) if slot == items_slot else node)

    return (_PROJECT, len(paths), into(program, _trie(paths), stored_or_items))


# Verdicts on an extra property of a projected record (see `_extras_verdict`).
_IGNORE: Final = -1
_WHOLE: Final = -2


def _only_branch(node: tuple[Any, ...], opcode: int) -> tuple[Any, ...] | None:
    """`node` if it has this opcode, or the one non-null branch of a union that has it."""
    if node[0] == _OPCODES["union"]:
        others = [branch for branch in node[1] if branch[0] != _OPCODES["null"]]
        node = others[0] if len(others) == 1 else node
    return node if node[0] == opcode else None


def _extras_verdict(
    pointer: str,
    program: tuple[Any, ...],
    paths: Sequence[Path],
    items_slot: int | None,
    item_paths: Sequence[Path],
) -> int:
    """Whether an extra property at `pointer` changes nothing a projection reads, and can always
    be put back in place (so the whole decode would not fail on it): `_IGNORE`; or the same
    provided the record's item list has a record at index k: k; else `_WHOLE`.

    Decided from the schema alone, for pointers producers repeat (`/items/0/variant`): a
    pointer that leaves the schema's records (into a list, a map, a string) could fail or not
    depending on the data, so it takes the whole decode.
    """
    record = _OPCODES["record"]
    try:
        parents, last = _POINTERS.get(pointer) or _parse_pointer(pointer)
    except ValueError:
        return _WHOLE
    tokens = [*parents, last]
    node: tuple[Any, ...] | None = program
    requested: _Trie | None = _trie(paths)
    verdict = _IGNORE
    position = 0
    while position < len(tokens):
        token, final = tokens[position], position == len(tokens) - 1
        entry = requested.get(token) if requested is not None else None
        if entry is not None and (final or entry[0][0] not in (None, items_slot)):
            return _WHOLE  # it sets a value the projection reads, or a part of one
        requested = entry[1] if entry is not None else None
        node = _only_branch(node, record) if node is not None else None
        if node is None:
            return _WHOLE
        if token not in node[1]:  # not in the schema: put back into a dict of its own
            return verdict if requested is None else _WHOLE
        node = node[2][node[1].index(token)]
        if entry is not None and entry[0][0] == items_slot:  # the item list: /items/<k>/...
            array = _only_branch(node, _OPCODES["array"])
            index = tokens[position + 1] if position + 1 < len(tokens) else ""
            if array is None or not index.isdigit() or position + 2 >= len(tokens):
                return _WHOLE
            node, requested, verdict = array[1], _trie(item_paths), int(index)
            position += 1
        position += 1
    return verdict if requested is None else _WHOLE


def _reference_values(
    reader: PathReader, items_slot: int | None, item_reader: PathReader
) -> Callable[[Record], Values]:
    """What a projection must give for a decoded record (its self-check)."""

    def values(event: Record) -> Values:
        read = list(reader.read(event))
        if items_slot is not None and isinstance(read[items_slot], list):
            read[items_slot] = [
                item_reader.read(item) if isinstance(item, dict) else item
                for item in read[items_slot]
            ]
        return tuple(read)

    return values


def _native_available() -> bool:
    try:
        from consumer.avro import _avro_reader  # noqa: F401
    except ImportError:
        return False
    return True


def _native_decoder(schema: Any) -> BodyDecoder:
    """The compiled reader (consumer/avro/_avro_reader.c) for `schema`, written and read alike."""
    from consumer.avro._avro_reader import Reader

    reader: BodyDecoder = Reader(_program(schema)[0], _TrailingBytesError)
    return reader


def _cavro_decoder(schema: Any) -> BodyDecoder:
    import cavro

    read = schema.binary_read
    # cavro tells no position: reading one more byte must hit the end of the input.
    read_past_end = cavro.Schema({"type": "fixed", "name": "EndProbe", "size": 1}).binary_read
    memory_reader = cavro.MemoryReader

    def decode(value: bytes, start: int) -> Record:
        source = memory_reader(memoryview(value)[start:] if start else value)
        record: Record = read(source)
        try:
            read_past_end(source)
        except EOFError:
            return record
        raise _TrailingBytesError

    return decode


def _cavro_schema(schema: Mapping[str, Any]) -> Any:
    import cavro

    return cavro.Schema(dict(schema), record_decodes_to_dict=True)


def _cavro_available() -> bool:
    try:
        import cavro  # noqa: F401
    except ImportError:
        return False
    return True


def _same_output(decoders: Sequence[BodyDecoder], bodies: Iterable[bytes]) -> bool:
    """True when every decoder gives the same record for every body (none may raise).

    Compared by repr, which, unlike ==, tells 1 from 1.0 and sees key order.
    """
    reference, *others = decoders
    for body in bodies:
        expected = repr(reference(body, 0))
        if any(repr(other(body, 0)) != expected for other in others):
            return False
    return True


def _checked(
    engine: str, build: Callable[[], BodyDecoder], reference: BodyDecoder, bodies: list[bytes]
) -> BodyDecoder | None:
    """The decoder `build` makes, when it decodes `bodies` exactly as `reference` does."""
    try:
        fast = build()
        if _same_output([reference, fast], bodies):
            return fast
    except Exception as exc:
        log.warning("%s failed its self-check (%s)", engine, type(exc).__name__)
    return None


def _random_bodies(parsed_schema: Any) -> list[bytes]:
    """Avro bodies of random records of the schema: every union branch gets exercised. None
    when the records would be too large (arrays of arrays, large `fixed` types)."""
    try:
        sample_cost = _compile(parsed_schema, logical_as_base=True).sample_cost
    except _NotCompilable:  # recursive: fastavro's records stay small at random
        sample_cost = 1
    if sample_cost * _SELF_CHECK_RANDOM > _MAX_SAMPLE_COST:
        return []
    bodies = []
    for record in generate_many(parsed_schema, _SELF_CHECK_RANDOM):
        stream = io.BytesIO()
        fastavro.schemaless_writer(stream, parsed_schema, record)
        bodies.append(stream.getvalue())
    return bodies


def _read(body: Callable[[bytes, int], _T], value: bytes, start: int) -> _T | DecodeFailure:
    try:
        return body(value, start)
    except _TrailingBytesError:
        return _failure("bytes left over after the Avro record")
    # Malformed input makes the Avro readers raise many kinds of errors (EOFError, ValueError,
    # UnicodeDecodeError, IndexError, ...): each one means "undecodable".
    except Exception as exc:
        return _failure(f"Avro decode error ({type(exc).__name__})")


def _put_back_extras(event: Record) -> Record | DecodeFailure:
    extras = event.pop(EXTRA_FIELD, None)
    if extras:
        try:
            for pointer, text in extras.items():
                _set_at_pointer(event, _POINTERS.get(pointer) or _parse_pointer(pointer), text)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return _BAD_EXTRAS
    return event


# Producers use a handful of pointers over and over: parse each once (bounded, for safety).
_POINTERS: dict[str, tuple[list[str], str]] = {}
_MAX_POINTERS: Final = 10_000


def _parse_pointer(pointer: str) -> tuple[list[str], str]:
    if not pointer.startswith("/"):
        raise ValueError("not a JSON Pointer")
    *parents, last = (_unescape(token) for token in pointer[1:].split("/"))
    if len(_POINTERS) >= _MAX_POINTERS:
        _POINTERS.clear()
    parsed = _POINTERS[pointer] = (parents, last)
    return parsed


def _set_at_pointer(event: Record, pointer: tuple[list[str], str], text: str) -> None:
    parents, last = pointer
    node: Any = event
    for token in parents:
        if isinstance(node, list):
            node = node[int(token)]
            continue
        child = node.get(token)
        if child is None:
            child = node[token] = {}
        node = child
    if isinstance(node, list):
        node[int(last)] = orjson.loads(text)
    else:
        node[last] = orjson.loads(text)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1") if ("~" in token or "/" in token) else token


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~") if "~" in token else token


# --- the decoder -----------------------------------------------------------------------------


class Decoder:
    """Record values → CA event dicts (or `DecodeFailure`s), one batch per call.

    Raises `RegistryUnavailable` (transient: retry the batch later, never dead-letter for it) and
    `RegistryRejected` (the registry refuses the consumer's requests) only while fetching a writer
    schema it has not seen; everything wrong with the bytes themselves is a `DecodeFailure`.
    """

    def __init__(
        self, settings: SchemaSettings, registry: SchemaRegistryClient | None = None
    ) -> None:
        self._schema = load_local_schema(settings)
        self._parsed = fastavro.parse_schema(self._schema)
        self._canonical = to_parsing_canonical_form(self._schema)
        if registry is None and settings.registry_url and settings.wire_format != "plain":
            registry = registry_client(settings)
        self._confluent = _uses_confluent_framing(settings, registry is not None)
        self._registry = registry if self._confluent else None
        try:
            self._prescan = _prescanner(_compile(self._schema, logical_as_base=True))
        except _NotCompilable:
            self._prescan = None  # recursive: the local schema is the operator's own
        self._engine, self._local = self._choose_engine(settings.decoder)
        # Registry writer schemas that differ from the local one are resolved by cavro when it
        # agrees (the compiled reader reads a schema as written, it does not resolve).
        self._cavro_reader = (
            _cavro_schema(self._schema)
            if self._registry is not None and self._engine != "fastavro" and _cavro_available()
            else None
        )
        self._by_id: dict[int, BodyDecoder | DecodeFailure] = {}
        self._unknown_until: dict[int, float] = {}

    @property
    def engine(self) -> str:
        """`native`, `cavro` or `fastavro`: the decoder in use for the project schema."""
        return self._engine

    @property
    def wire_format(self) -> str:
        return "confluent" if self._confluent else "plain"

    def decode_batch(self, values: Sequence[bytes | None]) -> list[Record | DecodeFailure]:
        return [self._decode(value) for value in values]

    def projector(
        self, paths: Sequence[Path], items_slot: int | None, item_paths: Sequence[Path]
    ) -> Callable[[Sequence[bytes | None]], list[Values | Record | DecodeFailure]] | None:
        """A batch decoder that reads only the values a mapping needs, saving the event's tree.

        A record comes as the tuple of its values at `paths` (as `PathReader(paths).read` would
        read them from the decoded record; one more value may follow), its list at slot
        `items_slot` holding tuples of each item's values at `item_paths`. Records it cannot
        read so (written with another registered schema, or with extra properties that land on
        what the paths read) come decoded whole. None unless the compiled reader is in use and
        the schema allows it; it is also checked, like the readers, to give exactly those values
        on sample records.
        """
        if self._engine != "native":
            return None
        paths, item_paths = tuple(paths), tuple(item_paths)
        try:
            program_tree = _program(self._schema)[0]
            program = _projection(program_tree, (*paths, (EXTRA_FIELD,)), items_slot, item_paths)
            from consumer.avro._avro_reader import Reader

            reader: Callable[[bytes, int], Values] = Reader(program, _TrailingBytesError)
        # _NotCompilable, _NotProjectable, and the reader's own limits ("program nested too
        # deeply": a projection nests a little deeper than the schema it reads).
        except ValueError as exc:
            log.info("Avro decoder reads whole records (%s)", exc)
            return None

        verdicts: dict[str, int] = {}

        def extras_ignorable(values: Values) -> bool:
            """The record's extra properties change none of `values`, and the whole decode
            would put each back in place without failing."""
            extras: dict[str, str] = values[-1]
            if len(extras) > 1 and any(b.startswith(a + "/") for a in extras for b in extras):
                return False  # one is put back into another: what the first holds decides
            for pointer, text in extras.items():
                verdict = verdicts.get(pointer)
                if verdict is None:
                    if len(verdicts) >= _MAX_POINTERS:
                        verdicts.clear()
                    verdict = verdicts[pointer] = _extras_verdict(
                        pointer, program_tree, paths, items_slot, item_paths
                    )
                if verdict == _WHOLE:
                    return False
                if verdict >= 0:
                    items = values[items_slot]  # type: ignore[index]
                    if not (
                        isinstance(items, list)
                        and verdict < len(items)
                        and items[verdict].__class__ is tuple
                    ):
                        return False
                try:
                    orjson.loads(text)
                except orjson.JSONDecodeError:
                    return False
            return True

        def project(value: bytes | None) -> Values | Record | DecodeFailure:
            located = self._locate(value) if value else _NO_VALUE
            if isinstance(located, DecodeFailure):
                return located
            assert value is not None
            return project_at(located[0], value, located[1])

        def project_at(
            body: BodyDecoder, value: bytes, start: int
        ) -> Values | Record | DecodeFailure:
            if body is not self._local:
                return self._decode_body(body, value, start)
            values: Values | DecodeFailure = _read(reader, value, start)
            if isinstance(values, tuple) and values[-1] and not extras_ignorable(values):
                return self._decode_body(body, value, start)  # extras put back by the decode
            return values

        # The samples are checked in the source's framing (a Confluent header shifts the body).
        start = _HEADER.size if self._confluent else 0
        header = _HEADER.pack(MAGIC_BYTE, 0) if self._confluent else b""
        expected = _reference_values(PathReader(paths), items_slot, PathReader(item_paths))
        for body in self._sample_bodies:
            whole = self._decode_body(self._local, body, 0)
            got = project_at(self._local, header + body, start)
            if isinstance(whole, DecodeFailure):
                continue
            if isinstance(got, dict):
                got = expected(got)
            if not isinstance(got, tuple) or repr(got[: len(paths)]) != repr(expected(whole)):
                log.warning("Avro decoder reads whole records (projection failed its check)")
                return None

        def project_batch(values: Sequence[bytes | None]) -> list[Values | Record | DecodeFailure]:
            return [project(value) for value in values]

        return project_batch

    def _decode(self, value: bytes | None) -> Record | DecodeFailure:
        if not value:
            return _NO_VALUE
        located = self._locate(value)
        if isinstance(located, DecodeFailure):
            return located
        return self._decode_body(located[0], value, located[1])

    def _locate(self, value: bytes) -> tuple[BodyDecoder, int] | DecodeFailure:
        """The body decoder for a (non-empty) record value, and where its Avro body starts."""
        if not self._confluent:
            return self._local, 0
        if len(value) < _HEADER.size or value[0] != MAGIC_BYTE:
            return _NOT_CONFLUENT
        if self._registry is None:
            return self._local, _HEADER.size
        schema_id = _HEADER.unpack_from(value)[1]
        body = self._by_id.get(schema_id) or self._writer_decoder(schema_id)
        if isinstance(body, DecodeFailure):
            return body
        return body, _HEADER.size

    @staticmethod
    def _decode_body(body: BodyDecoder, value: bytes, start: int) -> Record | DecodeFailure:
        event = _read(body, value, start)
        return event if isinstance(event, DecodeFailure) else _put_back_extras(event)

    def _writer_decoder(self, schema_id: int) -> BodyDecoder | DecodeFailure:
        """The decoder for writer schema `schema_id`, fetched and prepared once."""
        assert self._registry is not None
        retry_at = self._unknown_until.get(schema_id)
        if retry_at is not None and time.monotonic() < retry_at:
            return _failure(f"schema id {schema_id} is unknown to the registry")
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        registry = self._registry
        what = f"fetching schema id {schema_id}"
        try:
            registered = _registry_call(lambda: registry.get_schema(schema_id), what)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                self._unknown_until[schema_id] = time.monotonic() + _UNKNOWN_ID_RETRY_S
                return _failure(f"schema id {schema_id} is unknown to the registry")
            raise RegistryRejected(f"{what}: {exc}") from exc
        self._unknown_until.pop(schema_id, None)
        body = self._prepare_writer(schema_id, registered)
        self._by_id[schema_id] = body
        return body

    def _prepare_writer(self, schema_id: int, registered: Schema) -> BodyDecoder | DecodeFailure:
        """The body decoder for a registered writer schema, or why its messages are undecodable.

        Bounded whatever the schema (see "budgets for untrusted input"): refused when too large,
        too deep, recursive or amplifying; sample records only when they are small.
        """
        if (registered.schema_type or "AVRO") != "AVRO":
            return _failure(f"schema id {schema_id} is a {registered.schema_type} schema, not Avro")
        text = registered.schema_str or ""
        try:
            writer_schema = json.loads(text)
        except Exception as exc:
            return _failure(f"schema id {schema_id} is not a valid Avro schema ({exc})")
        problem = _writer_schema_problem(text, writer_schema)
        if problem is not None:
            return _failure(f"schema id {schema_id} refused: {problem}")
        try:
            if to_parsing_canonical_form(writer_schema) == self._canonical:
                return self._local
            writer = fastavro.parse_schema(writer_schema)
        except Exception as exc:
            return _failure(f"schema id {schema_id} is not a valid Avro schema ({exc})")
        try:
            compiled = _compile(writer_schema, logical_as_base=True)
        except _NotCompilable as exc:
            return _failure(f"schema id {schema_id} refused: {exc}")
        if compiled.objects > _MAX_DATUM_OBJECTS:
            return _failure(
                f"schema id {schema_id} refused: a record builds more than "
                f"{_MAX_DATUM_OBJECTS} values"
            )
        prescan = _prescanner(compiled)
        resolved = _guarded(_fastavro_decoder(writer, self._parsed), prescan)
        try:
            bodies = _random_bodies(writer)
            for body in bodies:
                resolved(body, 0)
        except Exception as exc:
            return _failure(f"schema id {schema_id} cannot be read as the project schema ({exc})")
        if self._cavro_reader is not None and bodies:
            try:
                fast = _cavro_decoder(
                    self._cavro_reader.reader_for_writer(_cavro_schema(writer_schema))
                )
                agrees = _same_output([resolved, fast], bodies)
            except Exception as exc:
                agrees = False
                log.warning("schema id %s: cavro failed (%s)", schema_id, type(exc).__name__)
            if agrees:
                return _guarded(fast, prescan)
            log.warning("schema id %s: decoded with fastavro (cavro disagrees)", schema_id)
        return resolved

    def _choose_engine(self, choice: str) -> tuple[str, BodyDecoder]:
        """The fastest decoder allowed by `choice` that is present and gives exactly fastavro's
        output on sample records; `ConfigError` when the one asked for cannot be used."""
        reference = _guarded(_fastavro_decoder(self._parsed), self._prescan)
        if choice == "fastavro":
            return "fastavro", reference
        candidates: dict[str, tuple[Callable[[], bool], str, Callable[[], BodyDecoder]]] = {
            "native": (
                _native_available,
                "the compiled reader was not built (no C compiler?)",
                lambda: _native_decoder(self._schema),
            ),
            "cavro": (
                _cavro_available,
                "cavro is not installed (pip install '.[fast]')",
                lambda: _guarded(_cavro_decoder(_cavro_schema(self._schema)), self._prescan),
            ),
        }
        bodies: list[bytes] | None = None
        for engine, (available, missing, build) in candidates.items():
            if choice not in {"auto", engine}:
                continue
            if not available():
                if choice == engine:
                    raise ConfigError("schema.decoder", missing)
                continue
            bodies = self._sample_bodies
            fast = _checked(engine, build, reference, bodies)
            if fast is not None:
                log.info("Avro decoder: %s (identical to fastavro on sample records)", engine)
                return engine, fast
            if choice == engine:
                raise ConfigError("schema.decoder", f"{engine}'s output differs from fastavro's")
        if choice == "auto" and bodies is not None:
            log.warning("Avro decoder: fastavro (the faster readers disagree with it)")
        return "fastavro", reference

    @functools.cached_property
    def _sample_bodies(self) -> list[bytes]:
        """Realistic and random records of the local schema, encoded: made once, for the
        readers' self-check and the projection's."""
        from consumer.devtools.samples import generate_events

        encoder = _PlainEncoder(self._schema)
        bodies = []
        for event in generate_events(_SELF_CHECK_EVENTS, seed=0, now_ms=_SELF_CHECK_NOW_MS):
            try:
                bodies.append(encoder.encode(event))
            except EncodeError:
                continue  # a custom local schema may not hold every sample
        return bodies + _random_bodies(self._parsed)


# --- the encoder -----------------------------------------------------------------------------

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
                    suffix="/" + _escape(field["name"]),
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
                    extras[f"{pointer}/{_escape(key)}"] = _json(field_value)
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
                fitted = value_fit(item, f"{pointer}/{_escape(key)}", extras)
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


class _PlainEncoder:
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
        self._plain = _PlainEncoder(self._schema)
        if registry is None and settings.registry_url and settings.wire_format != "plain":
            registry = registry_client(settings)
        self._confluent = _uses_confluent_framing(settings, registry is not None)
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
        header = self._headers[topic] = _HEADER.pack(MAGIC_BYTE, schema_id)
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
            return int(_registry_call(lambda: registry.register_schema(subject, schema), what))
        except SchemaRegistryError as exc:
            if exc.http_status_code not in (401, 403):
                raise RegistryRejected(f"{what}: {exc}") from exc
        # Auto-registration may be forbidden to this client: the schema may still be there.
        what = f"looking up the schema under {subject}"
        try:
            found = _registry_call(lambda: registry.lookup_schema(subject, schema), what)
        except SchemaRegistryError as exc:
            raise RegistryRejected(f"{what}: {exc}") from exc
        if found.schema_id is None:
            raise RegistryRejected(f"{what}: the registry gave no schema id")
        return int(found.schema_id)
