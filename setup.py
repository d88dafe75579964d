"""The compiled Avro reader; everything else is in pyproject.toml.

Optional by default: without a C compiler the package still installs and decodes with cavro or
fastavro (consumer/avro/readers.py: the fastest reader that is present and agrees is used). With
REQUIRE_NATIVE_AVRO_READER=1 (CI, the image's builder stage) a failed build fails the install,
rather than shipping without the reader.
"""

import os

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "consumer.avro._avro_reader",
            ["consumer/avro/_avro_reader.c"],
            optional=os.environ.get("REQUIRE_NATIVE_AVRO_READER", "") in ("", "0"),
            extra_compile_args=["-Wall", "-Werror=implicit-function-declaration"],
        )
    ]
)
