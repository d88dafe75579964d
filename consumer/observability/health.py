"""`/metrics`, `/livez`, `/readyz` on one port, served from a small thread of their own so a busy
or blocked pipeline cannot hide its own state."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumer.observability.metrics import Metrics

# The poll loop beats at least every consume timeout; a minute without a beat is a wedged loop.
LIVENESS_TIMEOUT_S = 60.0


class HealthServer:
    def __init__(
        self,
        metrics: Metrics,
        heartbeat: Callable[[], float],
        ready: Callable[[], tuple[bool, str]],
        host: str,
        port: int,
    ) -> None:
        self._metrics = metrics
        self._heartbeat = heartbeat
        self._ready = ready
        self._host = host
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="capi-health", daemon=True)
        self.port = port

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/livez", self._handle_live)
        app.router.add_get("/readyz", self._handle_ready)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self._host, self._port)
        self._loop.run_until_complete(site.start())
        if self._runner.addresses:
            self.port = self._runner.addresses[0][1]
        self._started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _handle_metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _handle_live(self, _request: web.Request) -> web.Response:
        age = time.monotonic() - self._heartbeat()
        if age > LIVENESS_TIMEOUT_S:
            return web.json_response({"live": False, "poll_loop_idle_s": round(age, 1)}, status=503)
        return web.json_response({"live": True})

    async def _handle_ready(self, _request: web.Request) -> web.Response:
        ready, why = self._ready()
        self._metrics.up.set(1 if ready else 0)
        return web.json_response({"ready": ready, "reason": why}, status=200 if ready else 503)
