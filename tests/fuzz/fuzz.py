"""`make fuzz`: the compiled Avro reader under AddressSanitizer and UBSan, differentially with
fastavro; then the one-call SHA-256 (transforms/_sha256_hex.c) the same way, against hashlib,
and `map`'s JSON reader (consumer/cli/_json_values.c), against orjson.

    python -m tests.fuzz.fuzz --seconds 60 --seed 18       # what CI runs
    python -m tests.fuzz.fuzz --replay tests/fuzz/crashes/<file>.json

The supervisor (this process, not sanitized) builds consumer/avro/_avro_reader.c with
-fsanitize=address,undefined into build/fuzz/, and runs a worker: Python with the sanitizer
runtime preloaded, PYTHONMALLOC=malloc (so ASan sees every object's bounds) and that build as
consumer.avro._avro_reader. The worker decodes, with a fixed seed:

- mutated messages of the committed seed corpus (tests/fuzz/corpus/*.json: a schema, messages)
  and of random records of random schemas: the compiled reader must not crash, must not trip a
  sanitizer, must finish within 2 s, and whatever it accepts fastavro must read identically;
- random records of random schemas as fastavro writes them: the compiled reader must read
  each exactly as fastavro does.

Before each decode the worker puts the schema and the message in a shared file: when it dies
(a sanitizer aborts it, it crashes) or stalls past 2 s (a hang), the supervisor saves them to
tests/fuzz/crashes/ and fails; so does a mismatch, saved by the worker.

The SHA-256 extension, built sanitized the same way, then hashes random lists of random texts
(every UTF-8 width, lone surrogates, lengths around the padding boundaries) on every compression
path the CPU has, for a quarter of `--seconds`: any digest unlike hashlib's, or a sanitizer
report, fails the run. Then `map`'s JSON reader (consumer/cli/_json_values.c), for another
quarter: random lines and mutated sample and golden lines (tests/consumer/cli/json_lines.py)
under every golden case's mapping; whatever it accepts must read as orjson and the path readers
read it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import mmap
import os
import random
import struct
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from tests.consumer.avro.records import zigzag

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
CRASHES = ROOT / "tests" / "fuzz" / "crashes"
BUILD = ROOT / "build" / "fuzz"
HANG_S = 2.0
# The shared file: iteration counter, schema length, message length, schema JSON, message.
_HEADER = struct.Struct("<QII")
_MAX_SCHEMA = 1 << 20
_MAX_MESSAGE = 2 << 20
_SHARED_SIZE = _HEADER.size + _MAX_SCHEMA + _MAX_MESSAGE
SANITIZER_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


# --- the supervisor ---------------------------------------------------------------------------


def build_sanitized(
    compiler: str, source: Path = ROOT / "consumer" / "avro" / "_avro_reader.c"
) -> Path:
    """`source` (the Avro reader) built with ASan and UBSan, as an importable extension."""
    BUILD.mkdir(parents=True, exist_ok=True)
    target = BUILD / f"{source.stem}{sysconfig.get_config_var('EXT_SUFFIX')}"
    command = [
        compiler,
        "-shared",
        "-fPIC",
        "-O1",
        "-g",
        "-fno-omit-frame-pointer",
        *SANITIZER_FLAGS,
        "-Wall",
        "-Werror",
        f"-I{sysconfig.get_paths()['include']}",
        str(source),
        "-o",
        str(target),
    ]
    subprocess.run(command, check=True)
    return target


def sanitizer_runtime(compiler: str) -> str:
    """The ASan runtime to preload: Python itself is not built with it, and ASan must come
    first in the process."""
    found = subprocess.run(
        [compiler, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(found) or not os.path.exists(found):
        sys.exit(f"fuzz: {compiler} has no AddressSanitizer runtime (apt-get install libasan8)")
    return os.path.realpath(found)


def save(kind: str, schema_text: str, message: bytes, detail: str) -> Path:
    CRASHES.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(schema_text.encode() + message).hexdigest()[:16]
    path = CRASHES / f"{kind}-{digest}.json"
    case = {"kind": kind, "detail": detail[-4000:], "schema": json.loads(schema_text or "null")}
    path.write_text(json.dumps({**case, "message": message.hex()}, indent=1) + "\n", "utf-8")
    return path


def supervise(args: argparse.Namespace) -> int:
    compiler = os.environ.get("CC", "gcc")
    module = build_sanitized(compiler)
    shared_path = BUILD / "current.bin"
    shared_path.write_bytes(b"\0" * _SHARED_SIZE)
    log_path = BUILD / "worker.log"
    env = {
        **os.environ,
        "LD_PRELOAD": sanitizer_runtime(compiler),
        "PYTHONMALLOC": "malloc",
        # Leaks: CPython's own at exit would drown them; the reader's are tested by tracemalloc.
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:symbolize=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    }
    command = [sys.executable, "-m", "tests.fuzz.fuzz", "--worker", str(module), str(shared_path)]
    command += ["--seconds", str(args.seconds), "--seed", str(args.seed)]
    if args.replay:
        command += ["--replay", args.replay]
    with log_path.open("wb") as log, shared_path.open("r+b") as shared_file:
        shared = mmap.mmap(shared_file.fileno(), _SHARED_SIZE)
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        last, since = -1, time.monotonic()
        while worker.poll() is None:
            time.sleep(0.1)
            counter = _HEADER.unpack_from(shared)[0]
            if counter != last:
                last, since = counter, time.monotonic()
            elif time.monotonic() - since > HANG_S:
                worker.kill()
                worker.wait()
                return report(shared, log_path, "hang", f"no progress for {HANG_S} s")
        output = log_path.read_text("utf-8", errors="replace")
        sys.stdout.write(output[-3000:])
        if worker.returncode == 0 and "runtime error:" not in output:
            if args.replay:
                return 0
            return fuzz_sha256(compiler, env, args) or fuzz_json_values(compiler, env, args)
        if worker.returncode == 3:  # a mismatch, saved by the worker
            return 1
        return report(shared, log_path, "crash", f"exit status {worker.returncode}")


def fuzz_sha256(compiler: str, env: dict[str, str], args: argparse.Namespace) -> int:
    """transforms/_sha256_hex.c sanitized, against hashlib (see the module docstring)."""
    return run_sanitized(
        compiler, env, args, ROOT / "transforms" / "_sha256_hex.c", "--sha256-worker"
    )


def fuzz_json_values(compiler: str, env: dict[str, str], args: argparse.Namespace) -> int:
    """consumer/cli/_json_values.c sanitized, against orjson (see the module docstring)."""
    source = ROOT / "consumer" / "cli" / "_json_values.c"
    return run_sanitized(compiler, env, args, source, "--json-worker")


def run_sanitized(
    compiler: str, env: dict[str, str], args: argparse.Namespace, source: Path, worker: str
) -> int:
    """`source` built sanitized, and run by `worker` for a quarter of `--seconds`."""
    module = build_sanitized(compiler, source)
    command = [sys.executable, "-m", "tests.fuzz.fuzz", worker, str(module)]
    command += ["--seconds", str(args.seconds / 4), "--seed", str(args.seed)]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    output = done.stdout + done.stderr
    sys.stdout.write(output[-3000:])
    return 0 if done.returncode == 0 and "runtime error:" not in output else 1


def json_values_work(args: argparse.Namespace) -> int:
    """The JSON reader's worker: random and mutated lines, against orjson and the path readers
    (tests/consumer/cli/json_lines.py), under the default mapping and every golden case's."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("consumer.cli._json_values", args.json_worker)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["consumer.cli._json_values"] = module  # what `projector` imports

    from consumer.avro.readers import self_check_events
    from consumer.cli.json_values import projector
    from tests.consumer.cli.json_lines import disagreement, line, mutate
    from tests.transforms.goldens import load_cases
    from transforms import MappingSettings

    configs = {json.dumps(case.config, sort_keys=True): case.config for case in load_cases()}
    mappings = []
    for config in configs.values():
        compiled = MappingSettings.model_validate(config).compile()
        project = projector(compiled)
        if project is not None:
            mappings.append((compiled, project))
    seeds = [json.dumps(event).encode() for event in self_check_events()]
    seeds += [case.line for case in load_cases()]
    rng = random.Random(args.seed)
    lines = accepted = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        compiled, project = mappings[rng.randrange(len(mappings))]
        data = line(rng) if rng.random() < 0.5 else rng.choice(seeds)
        for _ in range(rng.choice([0, 1, 1, 2, 5])):
            data = mutate(rng, data)
        why = disagreement(project, compiled, data)
        if why is not None:
            print(f"json_values mismatch: {data!r}: {why}")
            return 3
        lines += 1
        accepted += project(data) is not None
    print(
        f"fuzz: {lines} JSON lines ({accepted} read by the reader, the rest declined) under "
        f"{len(mappings)} mappings in {args.seconds} s (seed {args.seed}), as orjson reads "
        "them; no sanitizer report or crash"
    )
    return 0


def sha256_work(args: argparse.Namespace) -> int:
    """The SHA-256 worker: random lists of texts, every path against hashlib."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("transforms._sha256_hex", args.sha256_worker)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = random.Random(args.seed)
    alphabet = ["a", "Z", "0", "@", "é", "ß", "中", "😀", "\ud800", "\udfff"]
    lengths = [0, 1, 3, 54, 55, 56, 57, 63, 64, 65, 119, 120, 200, 1000]

    def reference(text: str) -> str | None:
        try:
            return hashlib.sha256(text.encode()).hexdigest()
        except UnicodeEncodeError:
            return None

    lists = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        texts = [
            "".join(rng.choice(alphabet) for _ in range(rng.choice(lengths) // rng.choice([1, 4])))
            for _ in range(rng.randrange(0, 20))
        ]
        expected = [reference(text) for text in texts]
        for implementation in module.implementations():
            if module.sha256_hex_many_by(texts, implementation) != expected:
                print(f"sha256 mismatch ({implementation}): {texts!a}")
                return 3
        if (
            module.sha256_hex_many(texts) != expected
            or [module.sha256_hex(text) for text in texts] != expected
        ):
            print(f"sha256 mismatch: {texts!a}")
            return 3
        lists += 1
    print(
        f"fuzz: {lists} lists hashed by {', '.join(module.implementations())} in {args.seconds} s "
        f"(seed {args.seed}), identical to hashlib; no sanitizer report or crash"
    )
    return 0


def report(shared: mmap.mmap, log_path: Path, kind: str, why: str) -> int:
    _, schema_size, message_size = _HEADER.unpack_from(shared)
    start = _HEADER.size
    schema_text = shared[start : start + schema_size].decode()
    message = shared[start + _MAX_SCHEMA : start + _MAX_SCHEMA + message_size]
    output = log_path.read_text("utf-8", errors="replace")
    path = save(kind, schema_text, message, f"{why}\n{output}")
    print(f"fuzz: FAILED ({kind}: {why}); the input is saved in {path.relative_to(ROOT)}")
    print(output[-3000:])
    return 1


# --- the worker -------------------------------------------------------------------------------


def load_sanitized(path: str) -> None:
    """The sanitized build stands in for consumer.avro._avro_reader, before it is imported."""
    import importlib.util

    import consumer.avro

    spec = importlib.util.spec_from_file_location("consumer.avro._avro_reader", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["consumer.avro._avro_reader"] = module
    consumer.avro._avro_reader = module


class Worker:
    def __init__(self, shared_path: str) -> None:
        self._file = open(shared_path, "r+b")  # noqa: SIM115 - for the process's lifetime
        self._shared = mmap.mmap(self._file.fileno(), _SHARED_SIZE)
        self._counter = 0
        self.decodes = self.accepted = 0

    def set_schema(self, schema: Any) -> None:
        text = json.dumps(schema).encode()
        if len(text) > _MAX_SCHEMA:
            raise ValueError("schema too large for the fuzzer")
        start = _HEADER.size
        self._shared[start : start + len(text)] = text
        struct.pack_into("<I", self._shared, 8, len(text))
        self._counter += 1  # progress: the hang watch times decodes, not schema generation
        struct.pack_into("<I", self._shared, 12, 0)
        struct.pack_into("<Q", self._shared, 0, self._counter)

    def check(self, schema: Any, reader: Any, parsed: Any, message: bytes, valid: bool) -> None:
        """One decode by the compiled reader, compared with fastavro's."""
        message = message[:_MAX_MESSAGE]
        start = _HEADER.size + _MAX_SCHEMA
        self._shared[start : start + len(message)] = message
        self._counter += 1
        struct.pack_into("<I", self._shared, 12, len(message))
        struct.pack_into("<Q", self._shared, 0, self._counter)
        self.decodes += 1
        try:
            got = reader(message, 0)
        except ValueError as exc:  # UnicodeDecodeError and the trailing-bytes error included
            if valid:
                mismatch(schema, message, f"valid input refused: {type(exc).__name__}: {exc}")
            return
        self.accepted += 1
        import fastavro

        stream = io.BytesIO(message)
        try:
            expected = fastavro.schemaless_reader(stream, parsed, None)
        except Exception as exc:
            mismatch(schema, message, f"accepted, but fastavro fails: {type(exc).__name__}")
        if stream.tell() != len(message):
            mismatch(schema, message, "accepted, but fastavro leaves bytes over")
        if repr(got) != repr(expected):
            mismatch(schema, message, f"differs from fastavro:\n{got!r}\n{expected!r}")


def mismatch(schema: Any, message: bytes, detail: str) -> None:
    path = save("mismatch", json.dumps(schema), message, detail)
    print(f"fuzz: FAILED (mismatch: {detail[:500]}); the input is saved in {path}")
    sys.stdout.flush()
    os._exit(3)


INTERESTING = [0, 1, -1, 2, 63, 64, -65, 127, 128, 2**31 - 1, -(2**31), 2**62, -(2**63), 10**6]


def mutate(rng: random.Random, message: bytes) -> bytes:
    data = bytearray(message)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(7)
        at = rng.randint(0, len(data))
        if choice == 0 and data:  # flip a bit
            at = rng.randrange(len(data))
            data[at] ^= 1 << rng.randrange(8)
        elif choice == 1 and data:  # a random byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice == 2:  # insert an interesting varint (a count, a length, an index)
            data[at:at] = zigzag(rng.choice(INTERESTING) + rng.randint(-2, 2))
        elif choice == 3 and data:  # delete a run
            del data[at : at + rng.randint(1, 8)]
        elif choice == 4:  # truncate
            del data[rng.randint(0, len(data)) :]
        elif choice == 5 and data:  # duplicate a run
            end = min(len(data), at + rng.randint(1, 32))
            data[at:at] = data[at:end]
        else:  # random bytes
            data[at:at] = rng.randbytes(rng.randint(1, 8))
    return bytes(data)


def random_schema(rng: random.Random, depth: int = 0, names: list[str] | None = None) -> Any:
    """A random schema of every type the compiled reader takes (no logical types, no
    recursion); named types are reused by name."""
    names = [] if names is None else names
    primitives = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
    roll = rng.random()
    if depth >= 4 or roll < 0.35:
        if names and rng.random() < 0.2:
            return rng.choice(names)
        return rng.choice(primitives)
    kind = rng.choice(["record", "record", "array", "map", "union", "enum", "fixed"])
    name = f"N{len(names)}"
    if kind == "record":
        names.append(name)  # after its fields: a record may not contain itself
        fields = [
            {"name": f"f{i}", "type": random_schema(rng, depth + 1, names)}
            for i in range(rng.randint(0, 5))
        ]
        names.remove(name)
        names.append(name)
        return {"type": "record", "name": name, "fields": fields}
    if kind == "array":
        return {"type": "array", "items": random_schema(rng, depth + 1, names)}
    if kind == "map":
        return {"type": "map", "values": random_schema(rng, depth + 1, names)}
    if kind == "enum":
        names.append(name)
        symbols = [f"S{i}" for i in range(rng.randint(1, 4))]
        return {"type": "enum", "name": name, "symbols": symbols}
    if kind == "fixed":
        names.append(name)
        return {"type": "fixed", "name": name, "size": rng.randint(0, 9)}
    branches: list[Any] = []
    seen: set[str] = set()
    for _ in range(rng.randint(1, 4)):
        branch = random_schema(rng, depth + 1, names)
        if isinstance(branch, list):  # a union may not hold a union
            continue
        key = branch if isinstance(branch, str) else branch.get("name", branch["type"])
        if key in seen:
            continue
        seen.add(key)
        branches.append(branch)
    return branches or ["null"]


def top_schema(rng: random.Random) -> dict[str, Any]:
    names: list[str] = []
    fields = [{"name": f"t{i}", "type": random_schema(rng, 1, names)} for i in range(4)]
    return {"type": "record", "name": "Top", "fields": fields}


def work(args: argparse.Namespace) -> int:
    load_sanitized(args.worker[0])
    import fastavro

    from consumer.avro import _avro_reader, readers

    if not str(_avro_reader.__file__).startswith(str(BUILD)):
        sys.exit(f"fuzz: decoding would use {_avro_reader.__file__}, not the sanitized build")
    worker = Worker(args.worker[1])

    def prepared(schema: Any) -> tuple[Any, Any]:
        worker.set_schema(schema)
        return readers.native_decoder(schema), fastavro.parse_schema(json.loads(json.dumps(schema)))

    if args.replay:
        case = json.loads(Path(args.replay).read_text("utf-8"))
        reader, parsed = prepared(case["schema"])
        worker.check(case["schema"], reader, parsed, bytes.fromhex(case["message"]), False)
        print("fuzz: the saved input passes now")
        return 0

    rng = random.Random(args.seed)
    corpus = [json.loads(path.read_text("utf-8")) for path in sorted(CORPUS.glob("*.json"))]
    if not corpus:
        sys.exit(f"fuzz: no seed corpus in {CORPUS}")
    deadline = time.monotonic() + args.seconds
    schemas = 0
    while time.monotonic() < deadline:
        if rng.random() < 0.5:
            case = rng.choice(corpus)
            schema, seeds = case["schema"], [bytes.fromhex(m) for m in case["messages"]]
            reader, parsed = prepared(schema)
        else:
            schema = top_schema(rng)
            try:
                reader, parsed = prepared(schema)
            except (ValueError, fastavro.schema.SchemaParseException):
                continue  # a name defined in a union branch that was left out
            random.seed(rng.random())  # fastavro's generator draws from the global generator
            seeds = readers.random_bodies(parsed)[:8]
            if not seeds:
                continue  # records too large to generate (the decoder's own bound)
            for message in seeds:
                worker.check(schema, reader, parsed, message, True)
        schemas += 1
        for _ in range(200):
            worker.check(schema, reader, parsed, mutate(rng, rng.choice(seeds)), False)
    print(
        f"fuzz: {worker.decodes} decodes of {schemas} schemas in {args.seconds} s (seed "
        f"{args.seed}), {worker.accepted} accepted and identical to fastavro; no sanitizer "
        "report, crash, hang or mismatch"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replay", help="a saved input (tests/fuzz/crashes/*.json)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--sha256-worker", help=argparse.SUPPRESS)
    parser.add_argument("--json-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sha256_worker:
        return sha256_work(args)
    if args.json_worker:
        return json_values_work(args)
    return work(args) if args.worker else supervise(args)


if __name__ == "__main__":
    sys.exit(main())
