"""A minimal Confluent Schema Registry, for tests and the demo: a real HTTP server on 127.0.0.1
speaking the part of the REST protocol that confluent-kafka's `SchemaRegistryClient` uses.

It keeps schemas in memory, gives one id per distinct schema text (like the real registry, the
same schema under two subjects keeps its id), and checks no compatibility. `set_available(False)`
makes it answer 503 (or drop connections) until it is set back, to test a registry outage.

    with RegistryStub() as registry:
        client = SchemaRegistryClient({"url": registry.url})
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_START_TIMEOUT_S = 10.0


@dataclass
class _Subject:
    versions: list[int] = field(default_factory=list)  # schema id of version i + 1


class RegistryStub:
    """Start with `start()` (or a `with` block); `url` is then `http://127.0.0.1:<port>`."""

    def __init__(self) -> None:
        self._schemas: dict[int, tuple[str, str]] = {}  # id → (schema text, schema type)
        self._ids: dict[tuple[str, str], int] = {}
        self._subjects: dict[str, _Subject] = {}
        self._lock = threading.Lock()
        self._available = True
        self._close_connections = False
        self.requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # --- control (any thread) ---------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("the registry stub is not started")
        return f"http://127.0.0.1:{self._port}"

    def set_available(self, available: bool, *, close_connections: bool = False) -> None:
        """Unavailable: every request gets 503, or its connection closed with no answer."""
        self._close_connections = close_connections
        self._available = available

    def register(self, subject: str, schema: str, schema_type: str = "AVRO") -> int:
        """Register directly (no HTTP); returns the schema id."""
        with self._lock:
            return self._register(subject, schema, schema_type)

    def start(self) -> RegistryStub:
        ready = threading.Event()
        errors: list[BaseException] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_site(sock))
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                if self._runner is not None:
                    loop.run_until_complete(self._runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=serve, name="registry-stub", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S) or errors:
            self.stop()
            raise RuntimeError(f"the registry stub did not start: {errors[:1]}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_TIMEOUT_S)
        self._thread = None
        self._loop = None

    def __enter__(self) -> RegistryStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the server -------------------------------------------------------------------------

    async def _start_site(self, sock: socket.socket) -> None:
        app = web.Application(middlewares=[self._availability])
        app.add_routes(
            [
                web.get("/schemas/ids/{id}", self._get_schema),
                web.get("/schemas/ids/{id}/subjects", self._get_schema_subjects),
                web.get("/schemas/ids/{id}/versions", self._get_schema_versions),
                web.get("/schemas/types", self._get_types),
                web.get("/subjects", self._get_subjects),
                web.post("/subjects/{subject}/versions", self._register_version),
                web.get("/subjects/{subject}/versions", self._get_versions),
                web.get("/subjects/{subject}/versions/{version}", self._get_version),
                web.post("/subjects/{subject}", self._lookup),
                web.delete("/subjects/{subject}", self._delete_subject),
                web.get("/config", self._get_config),
                web.get("/config/{subject}", self._get_config),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    @web.middleware
    async def _availability(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests += 1
        if self._available:
            response: web.StreamResponse = await handler(request)
            return response
        if self._close_connections and request.transport is not None:
            request.transport.close()
        return _error(503, 50301, "schema registry unavailable (stub)")

    async def _get_schema(self, request: web.Request) -> web.Response:
        found = self._schemas.get(_int(request.match_info["id"]))
        if found is None:
            return _error(404, 40403, "Schema not found")
        return _json(_schema_body(*found))

    async def _get_schema_subjects(self, request: web.Request) -> web.Response:
        schema_id = _int(request.match_info["id"])
        if schema_id not in self._schemas:
            return _error(404, 40403, "Schema not found")
        with self._lock:
            names = [name for name, s in self._subjects.items() if schema_id in s.versions]
        return _json(names)

    async def _get_schema_versions(self, request: web.Request) -> web.Response:
        schema_id = _int(request.match_info["id"])
        if schema_id not in self._schemas:
            return _error(404, 40403, "Schema not found")
        with self._lock:
            pairs = [
                {"subject": name, "version": index + 1}
                for name, s in self._subjects.items()
                for index, version_id in enumerate(s.versions)
                if version_id == schema_id
            ]
        return _json(pairs)

    async def _get_types(self, _request: web.Request) -> web.Response:
        return _json(["AVRO", "JSON", "PROTOBUF"])

    async def _get_subjects(self, _request: web.Request) -> web.Response:
        with self._lock:
            return _json(sorted(self._subjects))

    async def _register_version(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if body is None:
            return _error(422, 42201, "Invalid schema")
        subject = request.match_info["subject"]
        schema, schema_type = body
        with self._lock:
            schema_id = self._register(subject, schema, schema_type)
            version = self._subjects[subject].versions.index(schema_id) + 1
        return _json({"id": schema_id, "subject": subject, "version": version, "schema": schema})

    async def _lookup(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if body is None:
            return _error(422, 42201, "Invalid schema")
        subject = request.match_info["subject"]
        with self._lock:
            entry = self._subjects.get(subject)
            if entry is None:
                return _error(404, 40401, "Subject not found")
            schema_id = self._ids.get((_normalized(body[0]), body[1]))
            if schema_id is None or schema_id not in entry.versions:
                return _error(404, 40403, "Schema not found")
            version = entry.versions.index(schema_id) + 1
        return _json(self._version_body(subject, version, schema_id))

    async def _get_versions(self, request: web.Request) -> web.Response:
        with self._lock:
            entry = self._subjects.get(request.match_info["subject"])
            if entry is None:
                return _error(404, 40401, "Subject not found")
            return _json(list(range(1, len(entry.versions) + 1)))

    async def _get_version(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        with self._lock:
            entry = self._subjects.get(subject)
            if entry is None or not entry.versions:
                return _error(404, 40401, "Subject not found")
            wanted = request.match_info["version"]
            version = len(entry.versions) if wanted in ("latest", "-1") else _int(wanted)
            if not 1 <= version <= len(entry.versions):
                return _error(404, 40402, "Version not found")
            schema_id = entry.versions[version - 1]
        return _json(self._version_body(subject, version, schema_id))

    async def _delete_subject(self, request: web.Request) -> web.Response:
        with self._lock:
            entry = self._subjects.pop(request.match_info["subject"], None)
        if entry is None:
            return _error(404, 40401, "Subject not found")
        return _json(list(range(1, len(entry.versions) + 1)))

    async def _get_config(self, _request: web.Request) -> web.Response:
        return _json({"compatibilityLevel": "NONE"})

    # --- state (under the lock) -------------------------------------------------------------

    def _register(self, subject: str, schema: str, schema_type: str) -> int:
        key = (_normalized(schema), schema_type)
        schema_id = self._ids.get(key)
        if schema_id is None:
            schema_id = self._ids[key] = len(self._schemas) + 1
            self._schemas[schema_id] = (schema, schema_type)
        entry = self._subjects.setdefault(subject, _Subject())
        if schema_id not in entry.versions:
            entry.versions.append(schema_id)
        return schema_id

    def _version_body(self, subject: str, version: int, schema_id: int) -> dict[str, Any]:
        return {
            "subject": subject,
            "version": version,
            "id": schema_id,
            **_schema_body(*self._schemas[schema_id]),
        }


def _normalized(schema: str) -> str:
    """Whitespace and key order do not make a different schema."""
    try:
        return json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return schema


def _schema_body(schema: str, schema_type: str) -> dict[str, Any]:
    # The real registry leaves schemaType out for Avro, its default.
    return (
        {"schema": schema}
        if schema_type == "AVRO"
        else {"schema": schema, "schemaType": schema_type}
    )


async def _body(request: web.Request) -> tuple[str, str] | None:
    try:
        body = json.loads(await request.read())
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        return None
    return body["schema"], str(body.get("schemaType") or "AVRO")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type=_CONTENT_TYPE)


def _error(status: int, error_code: int, message: str) -> web.Response:
    return _json({"error_code": error_code, "message": message}, status=status)
