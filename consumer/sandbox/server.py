"""The sandbox HTTP server: `POST /v1/events?pid=` as strict as openai-capi.md §11, plus the
test endpoints (`GET /v1/conversions/events`, `/_sandbox/...`). See docs/sandbox.md.

Run it with `run_sandbox()` (async context manager), `SandboxThread` (for synchronous callers)
or `capi-consumer sandbox`.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pydantic
from aiohttp import web

from consumer.errors import ConsumerError
from consumer.sandbox.settings import FaultSettings, FaultStep, SandboxSettings
from consumer.sandbox.state import Clock, Counters, FaultInjector, SandboxState, StoreResult
from consumer.sandbox.state import Rejection as StoredRejection
from transforms.capi_rules import (
    MAX_EVENTS_PER_REQUEST,
    validate_event,
    validate_integration_source,
)

STATE = web.AppKey("sandbox_state", SandboxState)
REQUEST_KEYS = frozenset({"events", "validate_only", "integration_source"})
# aiohttp refuses bodies over `client_max_size` (1 MiB by default, less than 1000 real events).
_NO_BODY_LIMIT = 1 << 30
_SHUTDOWN_TIMEOUT_S = 2.0
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class Rejected(ConsumerError):
    """A request answered with an error; `reason` is the stats key and the error `code`."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        detail: list[dict[str, Any]] | None = None,
        event: Any = None,
    ) -> None:
        super().__init__(message)
        self.event = event  # the event the error names, shown on `GET /_sandbox/`
        self.status = status
        self.reason = reason
        self.message = message
        self.param = param
        self.headers = headers
        self.detail = detail  # a fixed pydantic-style body (the missing `pid`)


def create_app(state: SandboxState) -> web.Application:
    app = web.Application(client_max_size=state.settings.max_body_bytes or _NO_BODY_LIMIT)
    app[STATE] = state
    app.router.add_post("/v1/events", handle_events)
    app.router.add_get("/v1/conversions/events", handle_monitoring)
    app.router.add_get("/_sandbox/", handle_page)
    app.router.add_get("/_sandbox/events.json", handle_page_events)
    app.router.add_get("/_sandbox/stats", handle_stats)
    app.router.add_get("/_sandbox/events", handle_stored_ids)
    app.router.add_post("/_sandbox/reset", handle_reset)
    app.router.add_get("/_sandbox/faults", handle_get_faults)
    app.router.add_post("/_sandbox/faults", handle_set_faults)
    app.router.add_post("/_sandbox/clock", handle_clock)
    return app


# --- POST /v1/events ----------------------------------------------------------------------


async def handle_events(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    pid = request.query.get("pid") or None
    counters = state.counters(pid)
    for c in counters:
        c.requests += 1
    injector = state.faults_for(pid)
    step = injector.next_step()
    latency_ms = injector.settings.latency_ms + (step.latency_ms if step else 0)
    if latency_ms:
        _count_fault(counters, "latency")
        await asyncio.sleep(latency_ms / 1000)
    if step is not None and step.drop == "before_read":
        _count_fault(counters, "drop_before_read")
        return _drop_connection(request)
    if step is not None and step.status is not None:
        _count_fault(counters, f"status_{step.status}")
        return _injected_status(step)
    try:
        result = await _accept(request, state, pid, injector)
    except Rejected as rejection:
        for c in counters:
            c.rejected[rejection.reason] += 1
        state.note_rejection(
            pid,
            StoredRejection(
                rejection.status,
                rejection.reason,
                rejection.message,
                rejection.param,
                rejection.event if isinstance(rejection.event, dict) else None,
            ),
        )
        return _error_response(rejection, state.settings)
    if step is not None and step.drop == "after_store":
        _count_fault(counters, "drop_after_store")
        return _drop_connection(request)
    return _json(
        {
            "received": result.received,
            "stored": result.stored,
            "duplicates": result.duplicates,
            "validate_only": result.validate_only,
        }
    )


async def _accept(
    request: web.Request, state: SandboxState, pid: str | None, injector: FaultInjector
) -> StoreResult:
    """Authenticate, read, validate the whole batch, then store it; raises `Rejected`."""
    settings = state.settings
    key = _bearer_key(request)
    denied = state.access.check_key(key)
    if denied is not None:
        raise Rejected(denied.status, denied.reason, denied.message)
    assert key is not None  # check_key denies a missing key
    if pid is None:
        raise Rejected(
            settings.missing_pid_status,
            "missing_pid",
            "Field required",
            detail=[
                {"type": "missing", "loc": ["query", "pid"], "msg": "Field required", "input": None}
            ],
        )
    denied = state.access.check_pixel(key, pid, settings.unknown_pixel_status)
    if denied is not None:
        raise Rejected(denied.status, denied.reason, denied.message)
    wait_s = injector.rate_limit_wait_s(pid, state.now_ms())
    if wait_s is not None:
        headers = None
        if injector.settings.rate_limit_retry_after:
            headers = {"Retry-After": str(max(1, math.ceil(wait_s)))}
        raise Rejected(429, "rate_limited", "Too many requests for this pixel.", headers=headers)

    body = await _read_json(request, settings)
    events, validate_only = _check_request(body, state, pid)
    now_ms = state.now_ms()
    rules = state.rules_for(pid)
    poison_ids = injector.poison_ids
    for index, event in enumerate(events):
        violation = validate_event(event, now_ms, rules)
        if violation is not None:
            path = f"events[{index}].{violation.field}" if violation.field else f"events[{index}]"
            raise Rejected(
                400, violation.reason, f"{path} {violation.message}", param=path, event=event
            )
        if poison_ids and event["id"] in poison_ids:
            path = f"events[{index}].id"
            raise Rejected(
                400,
                "poison_id",
                f"{path} is a poison id (injected fault)",
                param=path,
                event=event,
            )
    return state.store(pid, events, validate_only)


def _bearer_key(request: web.Request) -> str | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


async def _read_json(request: web.Request, settings: SandboxSettings) -> object:
    if request.content_type != "application/json":
        raise Rejected(400, "invalid_content_type", "Content-Type must be application/json.")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity") and not (
        settings.accept_gzip and encoding in ("gzip", "deflate")
    ):
        raise Rejected(415, "unsupported_content_encoding", "Content-Encoding is not supported.")
    too_large = Rejected(413, "body_too_large", "The request body is too large.")
    limit = settings.max_body_bytes
    if limit is not None and (request.content_length or 0) > limit:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    try:
        return parse_json(raw)
    except orjson.JSONDecodeError:
        raise Rejected(400, "invalid_json", "The body is not valid JSON.") from None


def parse_json(raw: bytes) -> object:
    """`orjson.loads` with the cyclic GC paused: parsing 1000 events allocates ~35k containers,
    whose collections would double the parse time, and parsed JSON holds no cycles to find."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(raw)
    finally:
        if paused:
            gc.enable()


def _check_request(
    body: object, state: SandboxState, pid: str
) -> tuple[list[dict[str, Any]], bool]:
    """The request-level rules (§11.1): the `events` wrapper, flags, size."""
    settings = state.settings
    if type(body) is not dict or "events" not in body:
        raise Rejected(400, "missing_events", "Missing required field: events")
    events = body["events"]
    if type(events) is not list:
        raise Rejected(400, "invalid_type", "events must be an array", param="events")
    if state.rules_for(pid).reject_unknown_fields and not body.keys() <= REQUEST_KEYS:
        key = next(key for key in body if key not in REQUEST_KEYS)
        raise Rejected(400, "unknown_key", f"{key} is not a known request field", param=key)
    validate_only = body.get("validate_only", False)
    if type(validate_only) is not bool:
        raise Rejected(
            400, "invalid_type", "validate_only must be a boolean", param="validate_only"
        )
    if "integration_source" in body and (
        validate_integration_source(body["integration_source"]) is None
    ):
        raise Rejected(
            400,
            "invalid_integration_source",
            "integration_source must be 1-64 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param="integration_source",
        )
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise Rejected(
            settings.too_many_events_status,
            "too_many_events",
            f"events must hold at most {MAX_EVENTS_PER_REQUEST} events",
            param="events",
        )
    if not events and not settings.accept_empty_events:
        raise Rejected(400, "empty_events", "events must not be empty", param="events")
    return events, validate_only


def _count_fault(counters: list[Counters], kind: str) -> None:
    for c in counters:
        c.faults[kind] += 1


def _drop_connection(request: web.Request) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)  # never sent: the connection is gone


def _injected_status(step: FaultStep) -> web.Response:
    assert step.status is not None
    headers = None if step.retry_after_s is None else {"Retry-After": str(step.retry_after_s)}
    if step.body is not None:
        try:
            orjson.loads(step.body)
            content_type = "application/json"
        except orjson.JSONDecodeError:
            content_type = "text/plain"
        return web.Response(
            status=step.status, text=step.body, content_type=content_type, headers=headers
        )
    rejection = Rejected(step.status, "injected_fault", "Injected fault.", headers=headers)
    return _error_response(rejection, None)


def _error_response(rejection: Rejected, settings: SandboxSettings | None) -> web.Response:
    body: dict[str, Any]
    if rejection.detail is not None:
        body = {"detail": rejection.detail}
    elif settings is not None and settings.error_format == "detail" and rejection.param:
        loc = ["body", *_path_parts(rejection.param)]
        body = {"detail": [{"type": rejection.reason, "loc": loc, "msg": rejection.message}]}
    elif settings is not None and settings.error_format == "detail":
        body = {"detail": rejection.message}  # FastAPI's HTTPException shape
    else:
        error_type = _ERROR_TYPES.get(rejection.status)
        if error_type is None:
            error_type = "server_error" if rejection.status >= 500 else "invalid_request_error"
        body = {
            "error": {
                "message": rejection.message,
                "type": error_type,
                "param": rejection.param,
                "code": rejection.reason,
            }
        }
    return _json(body, status=rejection.status, headers=rejection.headers)


def _path_parts(path: str) -> list[str | int]:
    """`events[3].data.currency` → `["events", 3, "data", "currency"]`."""
    return [
        name if name else int(index) for name, index in _PATH_PART.findall(path) if name or index
    ]


def _json(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


# --- test and monitoring endpoints ---------------------------------------------------------


def _required_pid(request: web.Request) -> str:
    pid = request.query.get("pid")
    if not pid:
        raise web.HTTPBadRequest(text="pid is required")
    return pid


async def handle_monitoring(request: web.Request) -> web.Response:
    """`GET /v1/conversions/events?pid=&limit=50`: the newest stored events, newest first."""
    state = request.app[STATE]
    pid = _required_pid(request)
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be an integer") from None
    return _json({"object": "list", "data": state.recent_events(pid, limit)})


@functools.cache
def _page() -> bytes:
    from consumer.observability.inspector import page_html

    return page_html("/_sandbox/events.json", "CAPI sandbox: stored and rejected events")


async def handle_page(_request: web.Request) -> web.Response:
    """`GET /_sandbox/`: a local "test events" screen (the events inspector's page)."""
    from consumer.observability.inspector import PAGE_POLICY

    return web.Response(
        body=_page(),
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": PAGE_POLICY},
    )


async def handle_page_events(request: web.Request) -> web.Response:
    return _json(request.app[STATE].page_events())


async def handle_stats(request: web.Request) -> web.Response:
    return _json(request.app[STATE].stats())


async def handle_stored_ids(request: web.Request) -> web.Response:
    """`GET /_sandbox/events?pid=[&type=]`: every stored id of a pixel, oldest first."""
    ids = request.app[STATE].stored_ids(_required_pid(request), request.query.get("type"))
    return _json({"pid": request.query["pid"], "count": len(ids), "ids": ids})


async def handle_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return _json({"reset": True})


async def handle_get_faults(request: web.Request) -> web.Response:
    return _json(request.app[STATE].faults_for(request.query.get("pid")).describe())


async def handle_set_faults(request: web.Request) -> web.Response:
    """`POST /_sandbox/faults[?pid=]` with a `faults` section: replaces the faults."""
    faults = await _read_model(request, FaultSettings)
    injector = request.app[STATE].set_faults(faults, request.query.get("pid") or None)
    return _json(injector.describe())


class _ClockChange(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    offset_ms: int


async def handle_clock(request: web.Request) -> web.Response:
    """`POST /_sandbox/clock` with `{"offset_ms": N}`: shifts the sandbox clock."""
    state = request.app[STATE]
    state.clock_offset_ms = (await _read_model(request, _ClockChange)).offset_ms
    return _json({"offset_ms": state.clock_offset_ms, "now_ms": state.now_ms()})


_Model = TypeVar("_Model", bound=pydantic.BaseModel)


async def _read_model(request: web.Request, model: type[_Model]) -> _Model:
    try:
        return model.model_validate_json(await request.read() or b"{}")
    except pydantic.ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise web.HTTPBadRequest(
            text=orjson.dumps({"detail": errors}).decode(), content_type="application/json"
        ) from None


# --- running it -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunningSandbox:
    url: str
    host: str
    port: int
    state: SandboxState


@asynccontextmanager
async def run_sandbox(
    settings: SandboxSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
) -> AsyncIterator[RunningSandbox]:
    """Serve on `host:port` (0: a free port) until the block ends."""
    state = SandboxState(settings or SandboxSettings(), clock)
    runner = web.AppRunner(create_app(state), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_port: int = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        yield RunningSandbox(f"http://{url_host}:{bound_port}", host, bound_port, state)
    finally:
        await runner.cleanup()


_Result = TypeVar("_Result")


class SandboxThread:
    """The sandbox on its own event loop in a daemon thread, for synchronous callers.

    sandbox = SandboxThread(settings)
    url = sandbox.start()
    ...
    stats = sandbox.call(lambda state: state.stats())
    sandbox.stop()
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._host = host
        self._port = port
        self._clock = clock
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running: RunningSandbox | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self._require_running().url

    @property
    def state(self) -> SandboxState:
        """Read it through `call()` while the sandbox runs (its loop mutates it)."""
        return self._require_running().state

    def start(self, timeout_s: float = 10.0) -> str:
        self._thread = threading.Thread(target=self._run, name="capi-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the sandbox did not start in time")
        if self._error is not None:
            raise self._error
        return self.url

    def call(self, function: Callable[[SandboxState], _Result], timeout_s: float = 10.0) -> _Result:
        """Run `function(state)` on the sandbox's loop and return its result; after `stop()`,
        directly (the state no longer changes, so it can still be read)."""
        running = self._require_running()
        loop = self._loop
        if loop is None:
            return function(running.state)

        async def on_loop() -> _Result:
            return function(running.state)

        return asyncio.run_coroutine_threadsafe(on_loop(), loop).result(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving and wait for the thread; harmless when already stopped."""
        loop, self._loop = self._loop, None
        if loop is not None and self._stop is not None:
            loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> SandboxThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _require_running(self) -> RunningSandbox:
        if self._running is None:
            raise RuntimeError("the sandbox is not running")
        return self._running

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread ends
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with run_sandbox(
            self._settings, host=self._host, port=self._port, clock=self._clock
        ) as running:
            self._running = running
            self._ready.set()
            await self._stop.wait()
