"""Pure-ASGI layers in front of the routes.

``MetricsMiddleware`` (outermost) times every request and counts it by route template,
method, status and tenant. ``GuardMiddleware`` then checks the body size, records the
body (test hook), authenticates the tenant, applies its requests per minute, and
watches for the client going away. Both run before FastAPI parses anything, so an
oversized, unauthenticated or rate-limited body never reaches a JSON parser.

Keys the guard leaves in the ASGI scope for the routes:
- ``cogenesis.tenant``: the authenticated ``Tenant``;
- ``cogenesis.client_gone``: a ``threading.Event`` set when the client disconnects, so
  work that nobody waits for any more can stop (see admission.py and the engines).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud_service.errors import RateLimited
from cloud_service.metrics import CloudMetrics
from cloud_service.quotas import TenantQuotas
from cloud_service.tenants import Tenant, TenantDirectory, hash_token

# The spec is public: the protocol is open source, and tools can read it without a token.
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json"})
METRICS_PATH = "/metrics"
TENANT_KEY = "cogenesis.tenant"
CLIENT_GONE_KEY = "cogenesis.client_gone"
# Status recorded for a request whose client left before any answer (nginx's code).
CLIENT_CLOSED_STATUS = 499
# An oversized body is still read (and dropped) up to this size before the 413: closing
# a socket with unread data makes the kernel reset it, and the client would see a reset
# instead of the 413. Anything larger is not worth reading.
DRAIN_LIMIT_BYTES = 1 << 20


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def retry_after_header(seconds: float) -> tuple[bytes, bytes]:
    return b"retry-after", str(max(1, math.ceil(seconds))).encode()


class RequestRecorder:
    """Appends each raw request body as one JSON line (test hook, off by default).

    Line: {"time", "method", "path", "body_hex", "truncated"}; headers (and so the
    token) are never written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, method: str, path: str, body: bytes, truncated: bool) -> None:
        line = json.dumps(
            {
                "time": time.time(),
                "method": method,
                "path": path,
                "body_hex": body.hex(),
                "truncated": truncated,
            }
        )
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


class GuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        tenants: TenantDirectory,
        quotas: TenantQuotas,
        metrics_token: str | None = None,
        recorder: RequestRecorder | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.tenants = tenants
        self.quotas = quotas
        self._metrics_digest = (
            bytes.fromhex(hash_token(metrics_token)) if metrics_token is not None else None
        )
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        declared = headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > DRAIN_LIMIT_BYTES:
            self._record(scope, b"", truncated=True)
            await self._too_large(send)
            return
        body, complete, disconnected = await self._read_body(receive)
        self._record(scope, body, truncated=not complete)
        if not complete:
            await self._too_large(send)
            return
        path = scope["path"]
        if path == METRICS_PATH:
            if not self._metrics_allowed(headers.get("authorization")):
                await _send_json(send, 404, error_body("not_found", "Not Found"))
                return
        elif path not in PUBLIC_PATHS:
            tenant, problem = self._authenticate(headers.get("authorization"))
            if tenant is None:
                await _send_json(send, 401, error_body("unauthorized", problem), bearer=True)
                return
            scope[TENANT_KEY] = tenant
            try:
                self.quotas.admit_request(tenant)
            except RateLimited as exc:
                extra = [retry_after_header(exc.retry_after_s or 1)]
                await _send_json(send, 429, error_body(exc.code, exc.message), extra=extra)
                return
        await self._run_watching(scope, body, receive, send, disconnected)

    async def _run_watching(
        self, scope: Scope, body: bytes, receive: Receive, send: Send, disconnected: bool
    ) -> None:
        """Run the app; meanwhile, a disconnect sets the scope's client-gone event."""
        gone = threading.Event()
        scope[CLIENT_GONE_KEY] = gone
        left = asyncio.Event()
        if disconnected:
            gone.set()
            left.set()

        async def watch() -> None:
            while not left.is_set():
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    left.set()

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            await left.wait()  # the app asks again only to learn of a disconnect
            return {"type": "http.disconnect"}

        watcher = None if disconnected else asyncio.create_task(watch())
        try:
            await self.app(scope, replay, send)
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool, bool]:
        """(body, complete, client left): a prefix and False if it is over the limit.

        An oversized body is read on (and dropped) up to DRAIN_LIMIT_BYTES, so the 413
        reaches the client instead of a connection reset.
        """
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), size <= self.max_body_bytes, True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_body_bytes:
                chunks.append(chunk)
            if not message.get("more_body", False) or size > DRAIN_LIMIT_BYTES:
                return b"".join(chunks), size <= self.max_body_bytes, False

    def _authenticate(self, header: str | None) -> tuple[Tenant | None, str]:
        token, problem = _bearer(header)
        if token is None:
            return None, problem
        tenant = self.tenants.authenticate(token)
        return (tenant, "") if tenant is not None else (None, "invalid bearer token")

    def _metrics_allowed(self, header: str | None) -> bool:
        token, _ = _bearer(header)
        if self._metrics_digest is None or token is None:
            return False
        return hmac.compare_digest(bytes.fromhex(hash_token(token)), self._metrics_digest)

    async def _too_large(self, send: Send) -> None:
        message = f"request body larger than {self.max_body_bytes} bytes"
        await _send_json(send, 413, error_body("payload_too_large", message), close=True)

    def _record(self, scope: Scope, body: bytes, truncated: bool) -> None:
        if self.recorder is not None:
            self.recorder.record(scope["method"], scope["path"], body, truncated)


class MetricsMiddleware:
    """Counts and times every HTTP request; labels are route templates, never paths
    (a session id in a label would make one series per session)."""

    def __init__(self, app: ASGIApp, *, metrics: CloudMetrics, routes: Sequence[BaseRoute]):
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app's live list: routes added later are seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = CLIENT_CLOSED_STATUS

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            tenant = scope.get(TENANT_KEY)
            self.metrics.observe_request(
                route=self._route(scope),
                method=scope["method"],
                status=status,
                seconds=time.perf_counter() - started,
                tenant=tenant.name if tenant is not None else None,
            )

    def _route(self, scope: Scope) -> str:
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return getattr(route, "path", "other")
            if match == Match.PARTIAL and partial is None:
                partial = getattr(route, "path", "other")
        return partial or "unmatched"


def _bearer(header: str | None) -> tuple[str | None, str]:
    if not header:
        return None, "missing bearer token: send 'Authorization: Bearer <token>'"
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None, "the Authorization header must be 'Bearer <token>'"
    return given.strip(), ""


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _send_json(
    send: Send,
    status: int,
    body: bytes,
    *,
    bearer: bool = False,
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    if close:  # after a 413 the connection is not reused
        headers.append((b"connection", b"close"))
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
