"""Avro in and out.

- decoding.py: `Decoder`, record values → CA events (or their projected values), by batch.
- encoder.py: `Encoder`, CA events → record values.
- framing.py: Confluent framing, `DecodeFailure`, extra properties by JSON Pointer.
- registry.py: the local schema and the Schema Registry client.
- readers.py: the body readers (fastavro, compiled, cavro) and their self-check, on our own
  sample records (self_check_events.json) and random ones.
- programs.py: schemas compiled for the C reader (`_avro_reader.c`); projection.py: the
  programs that read only what a mapping needs.
"""
