"""Pure-ASGI guard in front of the routes: body size, optional recording, bearer auth.

It runs before FastAPI parses anything, so an oversized or unauthenticated body never
reaches a JSON parser.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The spec is public: the protocol is open source, and tools can read it without a token.
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json"})
# An oversized body is still read (and dropped) up to this size before the 413: closing
# a socket with unread data makes the kernel reset it, and the client would see a reset
# instead of the 413. Anything larger is not worth reading.
DRAIN_LIMIT_BYTES = 1 << 20


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


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
        token: str | None,
        recorder: RequestRecorder | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._token = token.encode() if token is not None else None
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
        body, complete = await self._read_body(receive)
        self._record(scope, body, truncated=not complete)
        if not complete:
            await self._too_large(send)
            return
        if scope["path"] not in PUBLIC_PATHS and self._token is not None:
            problem = self._auth_problem(headers.get("authorization"))
            if problem is not None:
                await _send_json(send, 401, error_body("unauthorized", problem), bearer=True)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        """The whole body, or (prefix, False) if it is over the limit.

        An oversized body is read on (and dropped) up to DRAIN_LIMIT_BYTES, so the 413
        reaches the client instead of a connection reset.
        """
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client went away; the app will see it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_body_bytes:
                chunks.append(chunk)
            if not message.get("more_body", False) or size > DRAIN_LIMIT_BYTES:
                break
        return b"".join(chunks), size <= self.max_body_bytes

    def _auth_problem(self, header: str | None) -> str | None:
        assert self._token is not None
        if not header:
            return "missing bearer token: send 'Authorization: Bearer <COGENESIS_CLOUD_TOKEN>'"
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return "the Authorization header must be 'Bearer <token>'"
        if not hmac.compare_digest(given.strip().encode(), self._token):
            return "invalid bearer token"
        return None

    async def _too_large(self, send: Send) -> None:
        message = f"request body larger than {self.max_body_bytes} bytes"
        await _send_json(send, 413, error_body("payload_too_large", message), close=True)

    def _record(self, scope: Scope, body: bytes, truncated: bool) -> None:
        if self.recorder is not None:
            self.recorder.record(scope["method"], scope["path"], body, truncated)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(
    send: Send, status: int, body: bytes, *, bearer: bool = False, close: bool = False
) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    if close:  # after a 413 the connection is not reused
        headers.append((b"connection", b"close"))
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
