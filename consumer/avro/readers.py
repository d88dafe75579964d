"""The body readers (fastavro, the compiled one, cavro) and their self-check: a faster reader
is used only after it gives exactly fastavro's output on sample records (`sample_bodies`:
records of our own, see self_check_events.json, and random ones)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import fastavro
from fastavro.utils import generate_many

from consumer.avro.budgets import MAX_SAMPLE_COST
from consumer.avro.encoder import PlainEncoder
from consumer.avro.framing import BodyDecoder, Record, TrailingBytesError
from consumer.avro.programs import NotCompilable, compile_schema, program
from consumer.errors import EncodeError

log = logging.getLogger("consumer.decoding")

SELF_CHECK_RANDOM: Final = 32
# Realistic CA events of every kind the demo produces, some with extra properties (synthetic
# identities only). Ours, so that the service needs nothing of consumer/devtools.
_SELF_CHECK_EVENTS: Final = Path(__file__).with_name("self_check_events.json")


def fastavro_decoder(writer: Any, reader: Any = None) -> BodyDecoder:
    read = fastavro.schemaless_reader
    bytes_io = io.BytesIO

    def decode(value: bytes, start: int) -> Record:
        # BytesIO over bytes shares the buffer: no copy of the message.
        stream = bytes_io(value)
        stream.seek(start)
        record: Record = read(stream, writer, reader)  # type: ignore[assignment]
        if stream.tell() != len(value):
            raise TrailingBytesError
        return record

    return decode


def native_available() -> bool:
    try:
        from consumer.avro import _avro_reader  # noqa: F401
    except ImportError:
        return False
    return True


def native_decoder(schema: Any) -> BodyDecoder:
    """The compiled reader (consumer/avro/_avro_reader.c) for `schema`, written and read alike."""
    from consumer.avro._avro_reader import Reader

    reader: BodyDecoder = Reader(program(schema)[0], TrailingBytesError)
    return reader


def cavro_decoder(schema: Any) -> BodyDecoder:
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
        raise TrailingBytesError

    return decode


def cavro_schema(schema: Mapping[str, Any]) -> Any:
    import cavro

    return cavro.Schema(dict(schema), record_decodes_to_dict=True)


def cavro_available() -> bool:
    try:
        import cavro  # noqa: F401
    except ImportError:
        return False
    return True


def same_output(decoders: Sequence[BodyDecoder], bodies: Iterable[bytes]) -> bool:
    """True when every decoder gives the same record for every body (none may raise).

    Compared by repr, which, unlike ==, tells 1 from 1.0 and sees key order.
    """
    reference, *others = decoders
    for body in bodies:
        expected = repr(reference(body, 0))
        if any(repr(other(body, 0)) != expected for other in others):
            return False
    return True


def checked(
    engine: str, build: Callable[[], BodyDecoder], reference: BodyDecoder, bodies: list[bytes]
) -> BodyDecoder | None:
    """The decoder `build` makes, when it decodes `bodies` exactly as `reference` does."""
    try:
        fast = build()
        if same_output([reference, fast], bodies):
            return fast
    except Exception as exc:
        log.warning("%s failed its self-check (%s)", engine, type(exc).__name__)
    return None


def random_bodies(parsed_schema: Any) -> list[bytes]:
    """Avro bodies of random records of the schema: every union branch gets exercised. None
    when the records would be too large (arrays of arrays, large `fixed` types)."""
    try:
        sample_cost = compile_schema(parsed_schema, logical_as_base=True).sample_cost
    except NotCompilable:  # recursive: fastavro's records stay small at random
        sample_cost = 1
    if sample_cost * SELF_CHECK_RANDOM > MAX_SAMPLE_COST:
        return []
    bodies = []
    for record in generate_many(parsed_schema, SELF_CHECK_RANDOM):
        stream = io.BytesIO()
        fastavro.schemaless_writer(stream, parsed_schema, record)
        bodies.append(stream.getvalue())
    return bodies


def self_check_events() -> list[dict[str, Any]]:
    """Our own realistic CA events (a few shapes each), shipped with the package."""
    events: list[dict[str, Any]] = json.loads(_SELF_CHECK_EVENTS.read_text(encoding="utf-8"))
    return events


def sample_bodies(schema: Mapping[str, Any], parsed_schema: Any) -> list[bytes]:
    """Our sample events and random records of the schema, encoded: what the readers and the
    projection are checked on."""
    encoder = PlainEncoder(schema)
    bodies = []
    for event in self_check_events():
        try:
            bodies.append(encoder.encode(event))
        except EncodeError:
            continue  # a custom local schema may not hold every sample
    return bodies + random_bodies(parsed_schema)
