"""What commands do as they start: load the config (or exit 2), tune the allocator."""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from typing import Final

from consumer.config import AppConfig, ConfigError, load_config
from consumer.exit_codes import EXIT_CONFIG

# Below this, a time in epoch milliseconds is far more likely epoch seconds (it is March 1973).
SMALLEST_EPOCH_MS: Final = 100_000_000_000


def load_or_exit(path: str | None) -> AppConfig:
    """Load the config; on error print the one-line message and exit 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def tune_memory() -> None:
    """Allocator settings for a process that turns over the same memory batch after batch.

    The hot path allocates many short-lived dicts with no reference cycles: collect young objects
    rarely, and keep start-up objects out of every full collection. Measured: a third less CPU
    in `map_event` than under the default thresholds, and at 50,000 young objects each
    collection still traversed the events in flight (~2-3 µs per event); at 200,000 a drain of
    100k events triggers none.

    glibc hands freed memory back to the kernel eagerly (the heap top above 128 KiB, blocks
    above its mmap threshold), so each 1000-event batch faulted its pages back in: about one
    page fault per event. Up to 64 MiB of freed heap is kept for reuse instead; the pipeline's
    own limits (`delivery.max_pending_*`) still bound what is live.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 20, 100)
    _mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    _mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's own ceiling for its dynamic threshold


def limit_malloc_arenas() -> None:
    """At most two glibc malloc arenas: the main thread's and one shared by the others.

    glibc gives each thread that allocates its own arena (up to 8 per CPU), and each keeps its
    freed memory: librdkafka's broker threads, which allocate the fetched records the main
    thread frees, held ~70 MB more at the peak of a 1M-event drain (286 against 218 MB,
    docs/benchmarks.md). glibc reads the limit when the first thread needs an arena, so this
    runs before any thread starts. `MALLOC_ARENA_MAX` in the environment still wins.
    """
    if "MALLOC_ARENA_MAX" not in os.environ:
        _mallopt(_M_ARENA_MAX, 2)


def _mallopt(parameter: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):  # not glibc-compatible: keep its defaults
            return
        mallopt(parameter, value)


# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8
