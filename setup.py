"""The C extensions: the compiled Avro reader, the one-call SHA-256 and `map`'s JSON reader;
everything else is in pyproject.toml.

Optional by default: without a C compiler the package still installs, decodes with cavro or
fastavro (consumer/avro/readers.py: the fastest reader that is present and agrees is used),
hashes with hashlib, and `map` reads lines with orjson alone. With REQUIRE_NATIVE_AVRO_READER=1
(CI, the image's builder stage) a failed build of any of them fails the install, rather than
shipping without them.
"""

import os
from pathlib import Path

from setuptools import Extension, setup

# `CAPI_CONSUMER_MYPYC=1` at install compiles transforms/ with mypyc (the image and CI set it).
# Not settings.py: its pydantic validators fail compiled. The pure-Python modules stay the
# reference: .ci/run requires byte-identical output from both builds.
MYPYC = os.environ.get("CAPI_CONSUMER_MYPYC") == "1"


def mypyc_modules() -> list[Extension]:
    if not MYPYC:
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []  # setuptools' first pass, collecting `setup_requires` for the build env
    sources = sorted(str(p) for p in Path("transforms").glob("*.py") if p.name != "settings.py")
    return list(mypycify(sources, opt_level="3"))


OPTIONAL = os.environ.get("REQUIRE_NATIVE_AVRO_READER", "") in ("", "0")
C_FLAGS = ["-Wall", "-Werror=implicit-function-declaration"]

setup(
    # The build env of a compiled install: mypyc, and pydantic for the mypy plugin.
    setup_requires=["mypy>=1.10", "pydantic>=2.6,<3"] if MYPYC else [],
    ext_modules=[
        Extension(
            "consumer.avro._avro_reader",
            ["consumer/avro/_avro_reader.c"],
            optional=OPTIONAL,
            extra_compile_args=C_FLAGS,
        ),
        Extension(
            "transforms._sha256_hex",
            ["transforms/_sha256_hex.c"],
            optional=OPTIONAL,
            extra_compile_args=C_FLAGS,
        ),
        Extension(
            "consumer.cli._json_values",
            ["consumer/cli/_json_values.c"],
            optional=OPTIONAL,
            extra_compile_args=C_FLAGS,
        ),
        *mypyc_modules(),
    ],
)
