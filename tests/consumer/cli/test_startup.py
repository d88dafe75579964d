"""The allocator settings commands start with (consumer/cli/startup.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Eight threads allocate at once; glibc's malloc_info(3) then lists one <heap> per arena.
_COUNT_ARENAS = """
import ctypes, sys, tempfile, threading
from consumer.cli.startup import limit_malloc_arenas
if sys.argv[1] == "limited":
    limit_malloc_arenas()
ready = threading.Barrier(9)
done = threading.Event()
def allocate():
    kept = [bytes(range(256)) * 8 for _ in range(100)]  # > pymalloc's 512 B: from malloc
    ready.wait()
    done.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
ready.wait()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    print(open(report.name).read().count("<heap nr="))
done.set()
"""


def arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_ARENAS, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_threads_share_at_most_two_malloc_arenas() -> None:
    assert arenas("default") > 2  # glibc's own: an arena per allocating thread
    assert arenas("limited") <= 2
