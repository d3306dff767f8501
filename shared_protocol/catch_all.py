"""The catch-all both ends put innermost in their ASGI stack, for errors nobody expected.

It logs the exception's type and traceback, never its message (a message can quote
private context: a prompt, a profile value), and answers a generic 500 in the end's own
error shape. It does not re-raise: Starlette's error middleware does, and the server
then drops the kept-alive connection without a word, so the client's next request on
that connection would fail too.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AnswerAbandoned(RuntimeError):
    """An unexpected error after the answer had started: the server closes it. Raised
    in place of the original, whose message must not reach the server's log."""


def log_unexpected(log: logging.Logger, exc: BaseException, where: str) -> None:
    """Log an unexpected error by type and traceback, without its message."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unexpected %s in %s (message withheld)\n%s", type(exc).__name__, where, frames)


class CatchAllMiddleware:
    def __init__(self, app: ASGIApp, *, log: logging.Logger, body: dict[str, Any]) -> None:
        self.app = app
        self.log = log
        self.body = json.dumps(body).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log_unexpected(self.log, exc, f"{scope.get('method')} {scope.get('path')}")
            if started:  # too late for a status: the server closes the response
                raise AnswerAbandoned("see the log entry before this one") from None
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self.body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": self.body})
