"""`/metrics`, `/livez`, `/readyz` on one port, served from a small thread of their own so a busy
or blocked pipeline cannot hide its own state."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumer.observability.inspector import PAGE_POLICY, Inspector, page_html
from consumer.observability.metrics import Metrics

# The poll loop beats at least every consume timeout; a minute without a beat is a wedged loop.
LIVENESS_TIMEOUT_S = 60.0
# `capi_consumer_ready` follows readiness within a second, with no request needed.
READY_GAUGE_INTERVAL_S = 0.25


class PortUnavailable(Exception):
    """The health and metrics port cannot be bound; `str()` is the line shown to the user."""


class HealthServer:
    def __init__(
        self,
        metrics: Metrics,
        heartbeat: Callable[[], float],
        ready: Callable[[], tuple[bool, str]],
        host: str,
        port: int,
        inspector: Inspector | None = None,
    ) -> None:
        self._metrics = metrics
        self._inspector = inspector
        self._heartbeat = heartbeat
        self._ready = ready
        self._host = host
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._bind_error: OSError | None = None
        self._thread = threading.Thread(target=self._serve, name="capi-health", daemon=True)
        self.port = port

    def start(self) -> None:
        """Serve from a thread of its own; `PortUnavailable` when the port cannot be bound."""
        self._thread.start()
        self._started.wait(10)
        if self._bind_error is not None:
            self._thread.join(5)
            error = self._bind_error
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise PortUnavailable(
                f"cannot listen on the observability port {self._port} "
                f"(observability.host {self._host}): {reason}"
            )

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/livez", self._handle_live)
        app.router.add_get("/readyz", self._handle_ready)
        if self._inspector is not None:
            page = page_html("/inspector/events.json", "openai-capi-consumer: events inspector")
            app.router.add_get("/inspector", _static_page(page))
            app.router.add_get("/inspector/events.json", self._handle_inspector_events)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            self._loop.run_until_complete(site.start())
        except OSError as exc:
            self._bind_error = exc
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()
            self._started.set()
            return
        if self._runner.addresses:
            self.port = self._runner.addresses[0][1]
        refresher = self._loop.create_task(self._refresh_ready_gauge())
        self._started.set()
        self._loop.run_forever()
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(refresher)

    async def _refresh_ready_gauge(self) -> None:
        while True:
            self._metrics.up.set(1 if self._ready()[0] else 0)
            await asyncio.sleep(READY_GAUGE_INTERVAL_S)

    def stop(self) -> None:
        if not self._thread.is_alive() or self._bind_error is not None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _handle_metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _handle_inspector_events(self, _request: web.Request) -> web.Response:
        assert self._inspector is not None
        return web.Response(
            body=self._inspector.snapshot_json(),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _handle_live(self, _request: web.Request) -> web.Response:
        age = time.monotonic() - self._heartbeat()
        if age > LIVENESS_TIMEOUT_S:
            return web.json_response({"live": False, "poll_loop_idle_s": round(age, 1)}, status=503)
        return web.json_response({"live": True})

    async def _handle_ready(self, _request: web.Request) -> web.Response:
        ready, why = self._ready()
        self._metrics.up.set(1 if ready else 0)
        return web.json_response({"ready": ready, "reason": why}, status=200 if ready else 503)


def _static_page(body: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_request: web.Request) -> web.Response:
        return web.Response(
            body=body,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": PAGE_POLICY},
        )

    return handle
