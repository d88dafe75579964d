"""Fixtures for the sandbox tests: the real server on 127.0.0.1 and a real aiohttp client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from consumer.sandbox.server import RunningSandbox, run_sandbox
from consumer.sandbox.settings import SandboxSettings
from tests.consumer.sandbox.sandbox_helpers import FakeClock

StartSandbox = Callable[..., Awaitable[RunningSandbox]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def start_sandbox(clock: FakeClock) -> AsyncIterator[StartSandbox]:
    """`await start_sandbox(**sandbox_settings)`: a sandbox on a free port, on the test clock."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**settings: Any) -> RunningSandbox:
            return await stack.enter_async_context(
                run_sandbox(SandboxSettings.model_validate(settings), clock=clock)
            )

        yield start


@pytest.fixture
async def sandbox(start_sandbox: StartSandbox) -> RunningSandbox:
    """The default sandbox: no key configured (`test-key`), any pixel, strict rules."""
    return await start_sandbox()
