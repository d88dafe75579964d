"""A minimal CAPI stand-in on 127.0.0.1 for benchmarks: answers every POST with 200 (or 503 while
`down`), counts the events it accepted and, when asked, records when each event id arrived.

It does no validation, so a benchmark measures the consumer, not a simulator. It runs on its own
event loop in a daemon thread of the benchmark process.

    with Sink() as sink:
        ...  # point capi.base_url at sink.url
        sink.wait_for(n_events, timeout_s=60)
"""

from __future__ import annotations

import asyncio
import threading
import time

import orjson
from aiohttp import web

_START_TIMEOUT_S = 10.0


class Sink:
    def __init__(self, record_arrivals: bool = False) -> None:
        self.accepted = 0
        self.requests = 0
        self.refused = 0
        self.down = False
        self.record_arrivals = record_arrivals
        self.arrivals: dict[str, float] = {}  # event id -> time.time() of acceptance
        self._port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="bench-sink", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        if self.down:
            self.refused += 1
            return web.Response(status=503, text='{"error":{"message":"down"}}')
        events = orjson.loads(body)["events"]
        self.accepted += len(events)
        if self.record_arrivals:
            now = time.time()
            for event in events:
                self.arrivals[event["id"]] = now
        return web.Response(status=200, text="{}", content_type="application/json")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stopped = asyncio.Event()
        self._ready.set()
        await self._stopped.wait()
        await runner.cleanup()

    def start(self) -> Sink:
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("the bench sink did not start")
        return self

    def stop(self) -> None:
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(_START_TIMEOUT_S)

    def wait_for(self, events: int, timeout_s: float) -> bool:
        """True once `accepted` reaches `events`, False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.accepted < events:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
