"""Avro in and out: Confluent framing, the schema registry, the readers (the compiled one in
`_avro_reader.c`), projection and the encoder."""
