"""A Kafka-protocol broker for the demo, tests and benchmarks: librdkafka's mock cluster (3
brokers on 127.0.0.1), kept alive by a child process.

    with EmbeddedBroker() as broker:
        Producer({"bootstrap.servers": broker.bootstrap_servers})

`python -m consumer.devtools.embedded_broker` prints the bootstrap string on one line and serves
until SIGTERM/SIGINT or, when stdin is a pipe, until stdin closes (so it never outlives its parent).

What the mock cluster does and does not do: consumer groups and commits work; topics are created
on first use with 4 partitions; `offsets_for_times` and CreateTopics are not supported (the latter
times out); each partition keeps only about 5 MiB, silently dropping its oldest records beyond that
(spread large backlogs over topics, and compress).
"""

from __future__ import annotations

import os
import selectors
import signal
import stat
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Final

_BROKERS: Final = 3
_START_TIMEOUT_S: Final = 30.0
_STOP_TIMEOUT_S: Final = 10.0


class EmbeddedBroker:
    """The mock cluster in a child process; `stop()` ends that child only, and waits for it."""

    def __init__(self, start_timeout_s: float = _START_TIMEOUT_S) -> None:
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._bootstrap: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._bootstrap is None:
            raise RuntimeError("the embedded broker is not started")
        return self._bootstrap

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> EmbeddedBroker:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "consumer.devtools.embedded_broker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            self._bootstrap = self._read_bootstrap_line(self._process)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_bootstrap_line(self, process: subprocess.Popen[bytes]) -> str:
        assert process.stdout is not None
        deadline = time.monotonic() + self._start_timeout_s
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while b"\n" not in received:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(
                        f"the embedded broker printed no address within {self._start_timeout_s}s"
                    )
                if not selector.select(remaining):
                    continue
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    code = process.wait(_STOP_TIMEOUT_S)
                    raise RuntimeError(f"the embedded broker exited during start-up ({code})")
                received += chunk
        return received.split(b"\n", 1)[0].decode().strip()

    def stop(self) -> None:
        process, self._process = self._process, None
        self._bootstrap = None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()  # SIGTERM to this child's own PID
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(_STOP_TIMEOUT_S)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve() -> int:
    """Run the mock cluster, print its bootstrap string, serve until told to stop."""
    from confluent_kafka import Producer

    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # The mock cluster lives inside this client instance; log_level 4 hides its start-up notice.
    cluster = Producer({"test.mock.num.brokers": _BROKERS, "log_level": 4})
    brokers = cluster.list_topics(timeout=_START_TIMEOUT_S).brokers
    bootstrap = ",".join(f"{b.host}:{b.port}" for _, b in sorted(brokers.items()))
    print(bootstrap, flush=True)
    if _stdin_is_pipe():
        threading.Thread(target=_wait_for_eof, args=(stopping,), daemon=True).start()
    while not stopping.wait(0.2):
        cluster.poll(0)
    return 0


def _stdin_is_pipe() -> bool:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _wait_for_eof(stopping: threading.Event) -> None:
    # os.read, not sys.stdin: a thread blocked in a buffered read holds a lock that interpreter
    # shutdown would wait on.
    descriptor = sys.stdin.fileno()
    while os.read(descriptor, 4096):
        pass
    stopping.set()


if __name__ == "__main__":
    sys.exit(serve())
