"""``POST /v1/sketch/stream``: the outline as server-sent events, a point per finished line.

The engine generates on a worker thread, as for /v1/sketch; its line-end stop hint
(which also ends generation at the end of the list) hands each finished point to the
event loop, which sends it at once. The points of a stream are exactly those /v1/sketch
returns for the same request (``OutlineStream``). Events (shared_protocol):

    event: point   {"type": "point", "index": 0, "point": "..."}   one per point
    event: done    {"type": "done", "points": N, "model_id", "prompt_tokens", ...}
    event: error   {"type": "error", "error": {"code", "message"}}  then nothing

Admission, quotas and request validation answer before the stream begins, with the
usual status and error body; only a failure after that is an ``error`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from cloud_service.engines.base import ChatResult
from cloud_service.errors import ClientGone, CloudError
from cloud_service.sketch import OutlineStream, outline_complete
from shared_protocol.messages import (
    ErrorBody,
    SketchDoneEvent,
    SketchErrorEvent,
    SketchPointEvent,
    SketchRequest,
)

log = logging.getLogger("cloud_service.sketch_stream")
PING_S = 5  # an SSE comment this often while no point is due

SSE_DOC = (
    "Server-sent events: `point` (SketchPointEvent) per outline point as soon as its "
    "line is finished, then `done` (SketchDoneEvent); a failure after the stream began "
    "is an `error` event (SketchErrorEvent) and ends it. Each event's data is one JSON "
    "object of shared_protocol."
)


class OutlineRelay:
    """Carries finished points from the engine's thread to the event stream."""

    def __init__(self, request: SketchRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.outline = OutlineStream(request.max_points, fallback=request.instruction)
        self._loop = loop
        self._points: asyncio.Queue[str | None] = asyncio.Queue()

    def stop_hint(self, text: str) -> bool:
        """The engine's stop hint (its thread, at line ends): relay new points, then
        say whether the list is complete."""
        for point in self.outline.finished(text):
            self._put(point)
        return outline_complete(text, self.request.max_points)

    def close(self) -> None:
        """Generation ended (its thread): no more points come from the hint."""
        self._put(None)

    def _put(self, item: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
            self._loop.call_soon_threadsafe(self._points.put_nowait, item)

    async def events(
        self,
        running: asyncio.Future[ChatResult],
        model_id: str,
        on_reply: Callable[[ChatResult], None],
    ) -> AsyncIterator[dict[str, Any]]:
        sent = 0
        try:
            while (point := await self._points.get()) is not None:
                yield _event(SketchPointEvent(index=sent, point=point))
                sent += 1
            reply = await running
            on_reply(reply)
            cut_off = reply.completion_tokens >= self.request.max_tokens
            for point in self.outline.rest(reply.text, cut_off=cut_off):
                yield _event(SketchPointEvent(index=sent, point=point))
                sent += 1
            yield _event(
                SketchDoneEvent(
                    points=sent,
                    model_id=model_id,
                    prompt_tokens=reply.prompt_tokens,
                    completion_tokens=reply.completion_tokens,
                )
            )
        except ClientGone:
            return  # nobody reads on
        except CloudError as exc:
            yield _error(exc.code, exc.message)
        except Exception:  # the status line is sent: report in-band
            log.exception("sketch stream failed")
            yield _error("internal_error", "generation failed; see the server log")


def _event(event: SketchPointEvent | SketchDoneEvent | SketchErrorEvent) -> dict[str, Any]:
    return {"event": event.type, "data": event.model_dump_json()}


def _error(code: str, message: str) -> dict[str, Any]:
    return _event(SketchErrorEvent(error=ErrorBody(code=code, message=message)))
