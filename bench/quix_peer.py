"""The peer: the same job written idiomatically with Quix Streams, for `make bench` to compare.

    bench/.peer-venv/bin/python -m bench.quix_peer --bootstrap B --group G --events N \\
        --sink-url URL TOPIC...

Runs in its own virtualenv (quixstreams pins its own confluent-kafka; see
bench/peer-requirements.txt) with the project on PYTHONPATH, so it uses the same decoder
(`consumer.avro.decoding.Decoder`, same engine choice) and the same `transforms.map_event`. A
`BatchingSink` subclass POSTs the mapped events in 1000-event batches with a kept-alive HTTP
session. Prints one JSON object: events delivered, busy seconds, events/s.

With `--projected` its deserializer reads only the mapping's values, as the product's pipeline
does (`Decoder.projector`, then `map_values`): not how a Quix job is written (its values are
records the dataframe can filter and reshape), but it shows what is left of the gap when both
decode alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import requests
from quixstreams import Application
from quixstreams.models.serializers import Deserializer
from quixstreams.models.topics.admin import TopicAdmin
from quixstreams.models.topics.topic import TopicConfig
from quixstreams.sinks import BatchingSink, SinkBatch

from consumer.avro.decoding import DecodeFailure, Decoder
from consumer.config import AppConfig
from transforms import CompiledMapping, Mapped, Outcome, map_event, map_values

_BATCH = 1000


def _inspect_from_metadata(
    admin: TopicAdmin, topic_names: list[str], timeout: float = 30
) -> dict[str, TopicConfig | None]:
    """Topic configs from metadata alone: librdkafka's mock cluster (the benchmark's broker)
    does not answer DescribeConfigs, which Quix calls for every topic it is given."""
    cluster = admin.list_topics(timeout=timeout)
    return {
        name: TopicConfig(
            num_partitions=len(cluster[name].partitions),
            replication_factor=len(cluster[name].partitions[0].replicas),
        )
        if name in cluster
        else None
        for name in topic_names
    }


TopicAdmin.inspect_topics = _inspect_from_metadata  # type: ignore[method-assign]


class AvroDeserializer(Deserializer):
    """Record bytes → CA event dict with the project's decoder."""

    def __init__(self, decode: Callable[[list[bytes]], list[Any]]) -> None:
        super().__init__()
        self._decode = decode

    def __call__(self, value: bytes, ctx: Any) -> Any:
        decoded = self._decode([value])[0]
        return None if isinstance(decoded, DecodeFailure) else decoded


class CapiSink(BatchingSink):
    """POSTs `{"events": [...]}` bodies of up to 1000 mapped events."""

    def __init__(self, url: str, pixel_id: str, api_key: str) -> None:
        super().__init__()
        self._url = url.rstrip("/") + "/v1/events"
        self._params = {"pid": pixel_id}
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._session = requests.Session()
        self.delivered = 0
        self.first_at: float | None = None

    def write(self, batch: SinkBatch) -> None:
        for chunk in batch.iter_chunks(_BATCH):
            events = [item.value for item in chunk]
            body = orjson.dumps({"events": events})
            response = self._session.post(
                self._url, params=self._params, data=body, headers=self._headers, timeout=30
            )
            response.raise_for_status()
            self.delivered += len(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--sink-url", required=True)
    parser.add_argument("--pixel-id", default="pixel-bench")
    parser.add_argument("--api-key", default="bench-key")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--state-dir", required=True, help="Quix's state directory (unused)")
    parser.add_argument("--projected", action="store_true", help="decode as the product does")
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()

    config = AppConfig.model_validate({})
    compiled = config.compile()
    decoder = Decoder(config.schema_settings)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        auto_create_topics=False,  # the mock broker does not support CreateTopics
        use_changelog_topics=False,
        state_dir=args.state_dir,
    )
    decode: Callable[[list[bytes]], list[Any]] = decoder.decode_batch
    transform: Callable[[Any, CompiledMapping, int], Outcome] = map_event
    if args.projected:
        read = compiled.event_reader.read
        project = decoder.projector(
            list(compiled.event_reader.index), compiled.items, list(compiled.item_reader.index)
        )
        assert project is not None, "the compiled reader is needed to project"
        decode = project

        def transform(values: Any, compiled: CompiledMapping, now_ms: int) -> Outcome:
            values = values if isinstance(values, tuple) else read(values)
            return map_values(values, compiled, now_ms)

    deserializer = AvroDeserializer(decode)
    started: list[float] = []

    def to_capi(event: Any) -> dict[str, Any] | None:
        if not started:
            started.append(time.monotonic())
        outcome = transform(event, compiled, int(time.time() * 1000))
        return outcome.event if isinstance(outcome, Mapped) else None

    sink = CapiSink(args.sink_url, args.pixel_id, args.api_key)
    for name in args.topics:
        sdf = app.dataframe(app.topic(name, value_deserializer=deserializer))
        sdf = sdf.filter(lambda event: event is not None).apply(to_capi)
        sdf.filter(lambda event: event is not None).sink(sink)
    app.run(count=args.events, timeout=args.timeout)
    busy = time.monotonic() - started[0] if started else 0.0
    result = {
        "events": sink.delivered,
        "busy_s": round(busy, 3),
        "events_per_s": round(sink.delivered / busy, 1) if busy else 0.0,
    }
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
