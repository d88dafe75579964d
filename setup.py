"""The optional compiled Avro reader; everything else is in pyproject.toml.

`optional=True`: without a C compiler the package still installs and decodes with cavro or
fastavro (consumer/avro/decoding.py picks the fastest reader that is present and agrees).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "consumer.avro._avro_reader",
            ["consumer/avro/_avro_reader.c"],
            optional=True,
            extra_compile_args=["-Wall", "-Werror=implicit-function-declaration"],
        )
    ]
)
