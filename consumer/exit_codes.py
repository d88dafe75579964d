"""Exit codes of `capi-consumer` (a contract: scripts and Kubernetes read them).

Outside `consumer.cli` so that the commands, which the parser imports, need not import it."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_UNEXPECTED: Final = 1
EXIT_CONFIG: Final = 2
EXIT_CREDENTIALS: Final = 3
EXIT_DLQ_BREAKER: Final = 4
