"""OpenAI's chat completions (plain and streamed) and the model list (one model per mode).

A user key chats as its user (a `user` field, if given, must name that user); an admin
key as the `user` it names. Everything that can be refused is refused before the job
runs, so a refused request has sent nothing to the cloud and ledgered nothing.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from edge_agent.auth import Caller, Principal
from edge_agent.collab.gate import Gate, GateFileError
from edge_agent.dependencies import Services
from edge_agent.errors import (
    ContextTooLong,
    GateNotAvailable,
    GateUnusable,
    ModelNotFound,
    NoTask,
    UnknownUser,
    UserRequired,
    VocabularyConflict,
    error_responses,
    log_unexpected,
    openai_error,
)
from edge_agent.gates import GateNotFound
from edge_agent.gateway import Gateway, PromptTooLong, VocabularyMismatch
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


@router.get("/v1/models", responses=error_responses(400, 401))
def list_models(_: Caller) -> dict:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "owned_by": "cogenesis"} for m in MODES],
    }


@router.post("/v1/chat/completions", responses=error_responses(400, 401, 403, 404, 409, 413, 415))
def chat_completions(body: ChatCompletionRequest, svc: Services, caller: Caller) -> Response:
    job = _job_from_request(svc, body, caller)
    cid = completion_id()
    if body.stream:
        return StreamingResponse(
            _stream(svc.gateway, job, cid, body.model), media_type="text/event-stream"
        )
    pieces: list[str] = []
    report = svc.gateway.execute(job, pieces.append)
    return JSONResponse(chat_completion(cid, body.model, "".join(pieces), report))


def _job_from_request(
    svc: EdgeServices, body: ChatCompletionRequest, caller: Principal
) -> CompletionJob:
    if body.model not in MODES:
        raise ModelNotFound(
            f"unknown model {body.model!r}; choose one of {', '.join(MODES)}", param="model"
        )
    user = caller.chat_user(body.user)
    if not user:
        raise UserRequired("the `user` field must name a stored profile", param="user")
    try:
        ctx = svc.store.profiles.load_context(user)
    except UserNotFound as exc:
        raise UnknownUser(f"unknown user {user!r}", param="user") from exc
    task = body.task()
    if task is None:
        raise NoTask("the last user message holds the task; none given")
    job = body.to_job(ctx, task, svc.settings, gate=_gate_for(svc, body))
    given = body.max_completion_tokens is not None or body.max_tokens is not None
    try:
        job = svc.gateway.fit(job, max_tokens_given=given)
    except PromptTooLong as exc:
        raise ContextTooLong(str(exc), param="messages") from exc
    if job.mode == "cogenesis-logits":
        try:
            svc.check_cloud_vocabulary()
        except VocabularyMismatch as exc:
            raise VocabularyConflict(str(exc), param="model") from exc
    return job


def _gate_for(svc: EdgeServices, body: ChatCompletionRequest) -> Gate | None:
    """The gate a logits request fuses with, loaded by name here, before any worker."""
    options = body.cogenesis
    fusion = (options and options.fusion) or svc.settings.fusion
    if body.model != "cogenesis-logits" or fusion != "gate":
        return None
    name = (options and options.gate) or svc.settings.gate
    try:
        return svc.gates.get(name)
    except GateNotFound as exc:
        raise GateNotAvailable(str(exc), param="cogenesis.gate") from exc
    except GateFileError as exc:
        raise GateUnusable(str(exc), param="cogenesis.gate") from exc


_DONE = object()


def _stream(gateway: Gateway, job: CompletionJob, cid: str, model: str) -> Iterator[str]:
    """Run the job in a worker thread and relay its text as server-sent events."""
    events: queue.Queue[Any] = queue.Queue()

    def work() -> None:
        try:
            events.put(gateway.execute(job, lambda piece: events.put(piece)))
        except Exception as exc:  # reported in-band: the HTTP status is already sent
            log_unexpected(exc, "a streamed completion")
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
            # The exception's text may hold private context: the log has it, not the app.
            message = "generation failed; see the edge's log"
            yield _sse(openai_error(message, "server_error", "generation_failed"))
    yield "data: [DONE]\n\n"


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"
