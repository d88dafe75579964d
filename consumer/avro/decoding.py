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
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import fastavro
import orjson
from fastavro.schema import to_parsing_canonical_form

from consumer.avro.budgets import MAX_DATUM_OBJECTS, guarded, prescanner, writer_schema_problem
from consumer.avro.framing import (
    EXTRA_FIELD,
    HEADER,
    MAGIC_BYTE,
    MAX_POINTERS,
    NO_VALUE,
    NOT_CONFLUENT,
    BodyDecoder,
    DecodeFailure,
    Record,
    TrailingBytesError,
    put_back_extras,
    read_body,
    undecodable,
)
from consumer.avro.programs import NotCompilable, compile_schema, program
from consumer.avro.projection import (
    WHOLE,
    Path,
    Values,
    extras_verdict,
    projection,
    reference_values,
)
from consumer.avro.readers import (
    cavro_available,
    cavro_decoder,
    cavro_schema,
    checked,
    fastavro_decoder,
    native_available,
    native_decoder,
    random_bodies,
    same_output,
    sample_bodies,
)
from consumer.avro.registry import (
    load_local_schema,
    registry_call,
    registry_client,
    uses_confluent_framing,
)
from consumer.config import SchemaSettings
from consumer.errors import ConfigError, RegistryRejected
from transforms.paths import PathReader

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

log = logging.getLogger("consumer.decoding")

# The registry answered "no such schema id": try it again after this long, not per message.
_UNKNOWN_ID_RETRY_S: Final = 60.0
# Unknown ids remembered at most (random ids in hostile messages must not grow memory).
_MAX_UNKNOWN_IDS: Final = 10_000


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
        self._confluent = uses_confluent_framing(settings, registry is not None)
        self._registry = registry if self._confluent else None
        try:
            self._prescan = prescanner(compile_schema(self._schema, logical_as_base=True))
        except NotCompilable:
            self._prescan = None  # recursive: the local schema is the operator's own
        self._engine, self._local = self._choose_engine(settings.decoder)
        # Registry writer schemas that differ from the local one are resolved by cavro when it
        # agrees (the compiled reader reads a schema as written, it does not resolve).
        self._cavro_reader = (
            cavro_schema(self._schema)
            if self._registry is not None and self._engine != "fastavro" and cavro_available()
            else None
        )
        self._by_id: dict[int, BodyDecoder | DecodeFailure] = {}
        self._unknown_until: dict[int, float] = {}

    @property
    def parsed_schema(self) -> Any:
        """The local schema as fastavro parsed it."""
        return self._parsed

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
            program_tree = program(self._schema)[0]
            projected = projection(program_tree, (*paths, (EXTRA_FIELD,)), items_slot, item_paths)
            from consumer.avro._avro_reader import Reader

            reader: Callable[[bytes, int], Values] = Reader(projected, TrailingBytesError)
        # NotCompilable, NotProjectable, and the reader's own limits ("program nested too
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
                    if len(verdicts) >= MAX_POINTERS:
                        verdicts.clear()
                    verdict = verdicts[pointer] = extras_verdict(
                        pointer, program_tree, paths, items_slot, item_paths
                    )
                if verdict == WHOLE:
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
            located = self._locate(value) if value else NO_VALUE
            if isinstance(located, DecodeFailure):
                return located
            assert value is not None
            return project_at(located[0], value, located[1])

        def project_at(
            body: BodyDecoder, value: bytes, start: int
        ) -> Values | Record | DecodeFailure:
            if body is not self._local:
                return self._decode_body(body, value, start)
            values: Values | DecodeFailure = read_body(reader, value, start)
            if isinstance(values, tuple) and values[-1] and not extras_ignorable(values):
                return self._decode_body(body, value, start)  # extras put back by the decode
            return values

        # The samples are checked in the source's framing (a Confluent header shifts the body).
        start = HEADER.size if self._confluent else 0
        header = HEADER.pack(MAGIC_BYTE, 0) if self._confluent else b""
        expected = reference_values(PathReader(paths), items_slot, PathReader(item_paths))
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
            return NO_VALUE
        located = self._locate(value)
        if isinstance(located, DecodeFailure):
            return located
        return self._decode_body(located[0], value, located[1])

    def _locate(self, value: bytes) -> tuple[BodyDecoder, int] | DecodeFailure:
        """The body decoder for a (non-empty) record value, and where its Avro body starts."""
        if not self._confluent:
            return self._local, 0
        if len(value) < HEADER.size or value[0] != MAGIC_BYTE:
            return NOT_CONFLUENT
        if self._registry is None:
            return self._local, HEADER.size
        schema_id = HEADER.unpack_from(value)[1]
        body = self._by_id.get(schema_id) or self._writer_decoder(schema_id)
        if isinstance(body, DecodeFailure):
            return body
        return body, HEADER.size

    @staticmethod
    def _decode_body(body: BodyDecoder, value: bytes, start: int) -> Record | DecodeFailure:
        event = read_body(body, value, start)
        return event if isinstance(event, DecodeFailure) else put_back_extras(event)

    def _writer_decoder(self, schema_id: int) -> BodyDecoder | DecodeFailure:
        """The decoder for writer schema `schema_id`, fetched and prepared once."""
        assert self._registry is not None
        retry_at = self._unknown_until.get(schema_id)
        if retry_at is not None and time.monotonic() < retry_at:
            return undecodable(f"schema id {schema_id} is unknown to the registry")
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        registry = self._registry
        what = f"fetching schema id {schema_id}"
        try:
            registered = registry_call(lambda: registry.get_schema(schema_id), what)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                if len(self._unknown_until) >= _MAX_UNKNOWN_IDS:
                    self._unknown_until.clear()
                self._unknown_until[schema_id] = time.monotonic() + _UNKNOWN_ID_RETRY_S
                return undecodable(f"schema id {schema_id} is unknown to the registry")
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
            return undecodable(
                f"schema id {schema_id} is a {registered.schema_type} schema, not Avro"
            )
        text = registered.schema_str or ""
        try:
            writer_schema = json.loads(text)
        except Exception as exc:
            return undecodable(f"schema id {schema_id} is not a valid Avro schema ({exc})")
        problem = writer_schema_problem(text, writer_schema)
        if problem is not None:
            return undecodable(f"schema id {schema_id} refused: {problem}")
        try:
            if to_parsing_canonical_form(writer_schema) == self._canonical:
                return self._local
            writer = fastavro.parse_schema(writer_schema)
        except Exception as exc:
            return undecodable(f"schema id {schema_id} is not a valid Avro schema ({exc})")
        try:
            compiled = compile_schema(writer_schema, logical_as_base=True)
        except NotCompilable as exc:
            return undecodable(f"schema id {schema_id} refused: {exc}")
        if compiled.objects > MAX_DATUM_OBJECTS:
            return undecodable(
                f"schema id {schema_id} refused: a record builds more than "
                f"{MAX_DATUM_OBJECTS} values"
            )
        prescan = prescanner(compiled)
        resolved = guarded(fastavro_decoder(writer, self._parsed), prescan)
        try:
            bodies = random_bodies(writer)
            for body in bodies:
                resolved(body, 0)
        except Exception as exc:
            return undecodable(
                f"schema id {schema_id} cannot be read as the project schema ({exc})"
            )
        if self._cavro_reader is not None and bodies:
            try:
                fast = cavro_decoder(
                    self._cavro_reader.reader_for_writer(cavro_schema(writer_schema))
                )
                agrees = same_output([resolved, fast], bodies)
            except Exception as exc:
                agrees = False
                log.warning("schema id %s: cavro failed (%s)", schema_id, type(exc).__name__)
            if agrees:
                return guarded(fast, prescan)
            log.warning("schema id %s: decoded with fastavro (cavro disagrees)", schema_id)
        return resolved

    def _choose_engine(self, choice: str) -> tuple[str, BodyDecoder]:
        """The fastest decoder allowed by `choice` that is present and gives exactly fastavro's
        output on sample records; `ConfigError` when the one asked for cannot be used."""
        reference = guarded(fastavro_decoder(self._parsed), self._prescan)
        if choice == "fastavro":
            return "fastavro", reference
        candidates: dict[str, tuple[Callable[[], bool], str, Callable[[], BodyDecoder]]] = {
            "native": (
                native_available,
                "the compiled reader was not built (no C compiler?)",
                lambda: native_decoder(self._schema),
            ),
            "cavro": (
                cavro_available,
                "cavro is not installed (pip install '.[fast]')",
                lambda: guarded(cavro_decoder(cavro_schema(self._schema)), self._prescan),
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
            fast = checked(engine, build, reference, bodies)
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
        """Made once, for the readers' self-check and the projection's."""
        return sample_bodies(self._schema, self._parsed)
