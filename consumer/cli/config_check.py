"""`capi-consumer config check`: validate, print the effective configuration (masked), report
mapping paths the reader schema cannot fill, and with `--online` ask the API itself.

`--online` sends one `validate_only` request per configured pixel (one mapped sample event, so
nothing is stored) with the configured key. Exit 3 when a key or pixel is refused (401, 403,
404), else 2 when a sample is refused (400, 422), else 1 when the API cannot be reached (or
answers anything else); 0 when every pixel accepted.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson
import yaml

from consumer.avro.schema_check import mapping_schema_problems
from consumer.cli.startup import load_or_exit
from consumer.config import AppConfig, ConfigError, masked
from consumer.exit_codes import EXIT_CONFIG, EXIT_CREDENTIALS, EXIT_OK, EXIT_UNEXPECTED
from consumer.live.batching import Batch, Pending

_REFUSED_SAMPLE = frozenset({400, 422})
_REFUSED_CREDENTIALS = frozenset({401, 403, 404})


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, never followed: urllib would re-send the bearer key to the
    `Location` host as a GET, and a 200 there would read as "accepted"."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def command(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    if not args.mapping_only:
        config.require_for_run()  # a ConfigError: one line naming the key, exit 2
    problems = mapping_schema_problems(config)
    if problems and args.strict:
        for problem in problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(yaml.safe_dump(masked(config), sort_keys=False), end="", flush=True)
    return check_online(config) if args.online else EXIT_OK


def sample_event(config: AppConfig, now_ms: int) -> dict[str, Any]:
    """The first of the package's own sample events (stamped `now_ms`) that this configuration
    maps to a CAPI event."""
    from consumer.avro.readers import self_check_events
    from transforms import Mapped, map_event

    compiled = config.compile()
    for event in self_check_events():
        event["context"]["event_timestamp"] = str(now_ms)
        outcome = map_event(event, compiled, now_ms)
        if isinstance(outcome, Mapped):
            return outcome.event
    raise ConfigError("", "configuration error: the mapping maps none of the sample events")


def check_online(config: AppConfig) -> int:
    from consumer.live.delivery import api_message, redact
    from consumer.live.routing import api_keys

    keys = api_keys(config)
    if not keys:
        raise ConfigError("capi.pixel_id", "required (or capi.routes) for --online")
    sample = sample_event(config, time.time_ns() // 1_000_000)
    item = Pending.alone(orjson.dumps(sample), sample["timestamp_ms"])
    url = config.capi.base_url.rstrip("/") + "/v1/events"
    worst = EXIT_OK
    for pixel, key in keys.items():
        secret = key.get()
        body = Batch(pixel, [item]).body(config.capi.integration_source, validate_only=True)
        request = urllib.request.Request(
            f"{url}?{urllib.parse.urlencode({'pid': pixel})}",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )
        try:
            with _OPENER.open(request, timeout=config.delivery.timeout_s):
                print(f"online: pixel {pixel}: accepted", file=sys.stderr)
                continue
        except urllib.error.HTTPError as error:
            status, answer = error.code, error.read()
        except (OSError, ValueError) as error:
            print(f"online: pixel {pixel}: unreachable ({type(error).__name__})", file=sys.stderr)
            worst = max(worst, EXIT_UNEXPECTED)
            continue
        message = redact(api_message(answer), [item])
        if 300 <= status < 400:
            message = "a redirect, not followed (check capi.base_url)"
        if secret:
            message = message.replace(secret, "[redacted]")
        print(f"online: pixel {pixel}: rejected (HTTP {status}): {message}", file=sys.stderr)
        if status in _REFUSED_CREDENTIALS:
            worst = max(worst, EXIT_CREDENTIALS)
        elif status in _REFUSED_SAMPLE:
            worst = max(worst, EXIT_CONFIG)
        else:
            worst = max(worst, EXIT_UNEXPECTED)
    return worst  # the exit codes rank as their numbers do: credentials, sample, reachability
