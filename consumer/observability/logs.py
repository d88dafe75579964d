"""Structured logs: one JSON object per line (or a readable line on a terminal).

Log records carry context in `extra` (topic, partition, offset, pixel, status, reason, counts),
never event content: the pipeline logs codes and coordinates, not values, so raw PII, keys,
oppref and obref cannot reach a log line.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import Any

import orjson

from consumer.redaction import redact_log

_URL_LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "urllib3",
    "requests",
)
_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: redact_log(v) if isinstance(v, str) else v
        for k, v in vars(record).items()
        if k not in _STANDARD
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact_log(record.getMessage()),
        }
        entry.update(_context(record))
        if record.exc_info and record.exc_info[0] is not None:
            # The type and where it happened, not the message: messages can carry values.
            entry["exception"] = record.exc_info[0].__name__
            entry["stack"] = [
                f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}"
                for frame in traceback.extract_tb(record.exc_info[2])
            ]
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={v}" for k, v in _context(record).items())
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{stamp} {record.levelname:<7} {redact_log(record.getMessage())}" + (
            f"  {context}" if context else ""
        )


def setup_logging(level: str = "info", log_format: str | None = None) -> None:
    """Configure the root logger once for a command (json off a terminal, text on one)."""
    if log_format is None:
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # HTTP client libraries log request URLs at INFO (a registry URL may carry user info):
    # only their warnings pass. Every line is also redacted (`redact_log`).
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
