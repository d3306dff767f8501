"""OpenAI's chat completions (plain and streamed) and the model list (one model per mode)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from edge_agent.dependencies import Services
from edge_agent.errors import (
    ModelNotFound,
    NoTask,
    UnknownUser,
    UserRequired,
    VocabularyConflict,
    openai_error,
)
from edge_agent.gateway import Gateway, VocabularyMismatch
from edge_agent.job import MODES, CompletionJob
from edge_agent.openai_types import (
    ChatCompletionRequest,
    chat_chunk,
    chat_completion,
    completion_id,
)
from edge_agent.report import CompletionReport
from edge_agent.services import EdgeServices
from edge_agent.store import UserNotFound

router = APIRouter()


@router.get("/v1/models")
def list_models() -> dict:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "owned_by": "cogenesis"} for m in MODES],
    }


@router.post("/v1/chat/completions")
def chat_completions(body: ChatCompletionRequest, svc: Services) -> Response:
    job = _job_from_request(svc, body)
    cid = completion_id()
    if body.stream:
        return StreamingResponse(
            _stream(svc.gateway, job, cid, body.model), media_type="text/event-stream"
        )
    pieces: list[str] = []
    report = svc.gateway.execute(job, pieces.append)
    return JSONResponse(chat_completion(cid, body.model, "".join(pieces), report))


def _job_from_request(svc: EdgeServices, body: ChatCompletionRequest) -> CompletionJob:
    if body.model not in MODES:
        raise ModelNotFound(
            f"unknown model {body.model!r}; choose one of {', '.join(MODES)}", param="model"
        )
    if not body.user:
        raise UserRequired("the `user` field must name a stored profile", param="user")
    try:
        ctx = svc.store.profiles.load_context(body.user)
    except UserNotFound as exc:
        raise UnknownUser(f"unknown user {body.user!r}", param="user") from exc
    task = body.task()
    if task is None:
        raise NoTask("the last user message holds the task; none given")
    job = body.to_job(ctx, task, svc.settings)
    if job.mode == "cogenesis-logits":
        try:
            svc.check_cloud_vocabulary()
        except VocabularyMismatch as exc:
            raise VocabularyConflict(str(exc), param="model") from exc
    return job


_DONE = object()


def _stream(gateway: Gateway, job: CompletionJob, cid: str, model: str) -> Iterator[str]:
    """Run the job in a worker thread and relay its text as server-sent events."""
    events: queue.Queue[Any] = queue.Queue()

    def work() -> None:
        try:
            events.put(gateway.execute(job, lambda piece: events.put(piece)))
        except Exception as exc:  # reported in-band: the HTTP status is already sent
            events.put(exc)
        finally:
            events.put(_DONE)

    threading.Thread(target=work, daemon=True, name="edge-stream").start()
    yield _sse(chat_chunk(cid, model, {"role": "assistant", "content": ""}))
    while (item := events.get()) is not _DONE:
        if isinstance(item, str):
            yield _sse(chat_chunk(cid, model, {"content": item}))
        elif isinstance(item, CompletionReport):
            yield _sse(chat_chunk(cid, model, {}, item))
        else:
            yield _sse(openai_error(str(item), "server_error", "generation_failed"))
    yield "data: [DONE]\n\n"


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"
