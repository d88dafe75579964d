"""`capi-consumer sandbox`: serve the sandbox until SIGTERM/SIGINT.

stdout gets one line, `sandbox listening on http://HOST:PORT` (the real port with `--port 0`);
notes for people (the default key, the undocumented choices in force) go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import fields

from pydantic import SecretStr

from consumer.sandbox.server import run_sandbox
from consumer.sandbox.settings import (
    DEFAULT_API_KEY,
    PixelSettings,
    SandboxSettings,
    load_sandbox_settings,
)
from consumer.sandbox.state import Access
from transforms.capi_rules import STRICT, Rules

EXIT_OK = 0
EXIT_CANNOT_LISTEN = 1


def command(args: argparse.Namespace) -> int:
    settings = with_command_line(
        load_sandbox_settings(args.config), api_keys=args.api_key, pixel_ids=args.pixel_id
    )
    return asyncio.run(serve(settings, args.host, args.port))


def with_command_line(
    settings: SandboxSettings, *, api_keys: list[str], pixel_ids: list[str]
) -> SandboxSettings:
    """`--api-key` adds sandbox-wide keys, `--pixel-id` adds pixels (every key may send to them)."""
    listed = {pixel.pixel_id for pixel in settings.pixels}
    added = [PixelSettings(pixel_id=pid) for pid in dict.fromkeys(pixel_ids) if pid not in listed]
    return settings.model_copy(
        update={
            "api_keys": [*settings.api_keys, *(SecretStr(key) for key in api_keys)],
            "pixels": [*settings.pixels, *added],
        }
    )


async def serve(settings: SandboxSettings, host: str, port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    listening = False
    try:
        async with run_sandbox(settings, host=host, port=port) as sandbox:
            listening = True
            for note in startup_notes(settings):
                print(note, file=sys.stderr, flush=True)
            print(f"sandbox listening on {sandbox.url}", flush=True)
            await stop.wait()
    except OSError as exc:
        if listening:
            raise
        print(f"sandbox: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    return EXIT_OK


def startup_notes(settings: SandboxSettings) -> list[str]:
    notes = []
    if Access(settings).uses_default_key:
        notes.append(
            f"sandbox: no API key configured: the key '{DEFAULT_API_KEY}' may send to any pixel"
        )
    notes.append(
        "sandbox: undocumented API behaviours (docs/sandbox.md): " + _rules_note(settings.rules)
    )
    return notes


def _rules_note(rules: Rules) -> str:
    changed = {
        f.name: value
        for f in fields(Rules)
        if (value := getattr(rules, f.name)) != getattr(STRICT, f.name)
    }
    if not changed:
        return "the strict defaults"
    return "strict defaults except " + ", ".join(f"{k}={v}" for k, v in changed.items())
