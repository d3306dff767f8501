"""OpenAI's chat completions (plain and streamed) and the model list (one model per mode).

A client that goes away stops its answer within a token: a stream notices it through
sse-starlette's disconnect listener, a plain request through a watcher on the ASGI
receive channel; either sets the job's cancel event, which frees the small-model worker
and closes a logits session.

A user key chats as its user (a `user` field, if given, must name that user); an admin
key as the `user` it names. Everything that can be refused is refused before the job
runs, so a refused request has sent nothing to the cloud and ledgered nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

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
from edge_agent.gateway import Gateway, VocabularyMismatch
from edge_agent.job import MODES, CompletionJob, Mode
from edge_agent.openai_types import (
    ChatCompletionRequest,
    chat_chunk,
    chat_completion,
    completion_id,
    usage_of,
)
from edge_agent.prompt_budget import PromptTooLong
from edge_agent.report import CompletionReport
from edge_agent.services import EdgeServices
from edge_agent.store import UserNotFound

router = APIRouter()

DESCRIPTIONS: dict[str, str] = {
    "local": "The small model on this device alone; nothing leaves the device.",
    "cogenesis-sketch": "The cloud outlines the guarded task title; the small model writes "
    "the answer on the device with your private context.",
    "cogenesis-logits": "The small model and the cloud choose every token together; the "
    "cloud sees the guarded task title and the answer with private details redacted.",
}


def _models(svc: EdgeServices) -> list[dict[str, Any]]:
    created = int(svc.started_at)
    models = [
        {
            "id": mode,
            "object": "model",
            "created": created,
            "owned_by": "cogenesis",
            "description": DESCRIPTIONS[mode],
        }
        for mode in MODES
    ]
    for alias, mode in svc.settings.aliases().items():
        models.append(
            {
                "id": alias,
                "object": "model",
                "created": created,
                "owned_by": "cogenesis",
                "description": f"An alias of {mode}. {DESCRIPTIONS[mode]}",
            }
        )
    return models


@router.get("/v1/models", responses=error_responses(400, 401))
def list_models(svc: Services, _: Caller) -> dict:
    return {"object": "list", "data": _models(svc)}


@router.get("/v1/models/{model_id}", responses=error_responses(400, 401, 404))
def get_model(model_id: str, svc: Services, _: Caller) -> dict:
    for model in _models(svc):
        if model["id"] == model_id:
            return model
    raise ModelNotFound(f"unknown model {model_id!r}", param="model")


@router.post("/v1/chat/completions", responses=error_responses(400, 401, 403, 404, 409, 413, 415))
async def chat_completions(
    body: ChatCompletionRequest, request: Request, svc: Services, caller: Caller
) -> Response:
    job = await anyio.to_thread.run_sync(_job_from_request, svc, body, caller)
    cid = completion_id()
    cancel = threading.Event()
    if body.stream:
        return EventSourceResponse(
            _events(svc.gateway, job, cid, job.mode, body.include_usage(), cancel),
            sep="\n",
            client_close_handler_callable=lambda _message: _set(cancel),
        )
    pieces: list[str] = []
    async with anyio.create_task_group() as watchers:
        watchers.start_soon(_cancel_on_disconnect, request, cancel)
        report = await anyio.to_thread.run_sync(svc.gateway.execute, job, pieces.append, cancel)
        watchers.cancel_scope.cancel()
    return JSONResponse(chat_completion(cid, job.mode, "".join(pieces), report))


def _job_from_request(
    svc: EdgeServices, body: ChatCompletionRequest, caller: Principal
) -> CompletionJob:
    mode = svc.settings.aliases().get(body.model, body.model)
    if mode not in MODES:
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
    conversation = body.conversation()
    if conversation is None:
        raise NoTask("the last user message holds the task; none given")
    gate = _gate_for(svc, body, mode)  # type: ignore[arg-type]
    job = body.to_job(ctx, conversation, svc.settings, mode=mode, gate=gate)  # type: ignore[arg-type]
    try:
        svc.gateway.check_fits(job)
    except PromptTooLong as exc:
        raise ContextTooLong(str(exc), param="messages") from exc
    if job.mode == "cogenesis-logits":
        try:
            svc.check_cloud_vocabulary()
        except VocabularyMismatch as exc:
            raise VocabularyConflict(str(exc), param="model") from exc
    return job


def _gate_for(svc: EdgeServices, body: ChatCompletionRequest, mode: Mode) -> Gate | None:
    """The gate a logits request fuses with, loaded by name here, before any worker."""
    options = body.cogenesis
    fusion = (options and options.fusion) or svc.settings.fusion
    if mode != "cogenesis-logits" or fusion != "gate":
        return None
    name = (options and options.gate) or svc.settings.gate
    try:
        return svc.gates.get(name)
    except GateNotFound as exc:
        raise GateNotAvailable(str(exc), param="cogenesis.gate") from exc
    except GateFileError as exc:
        raise GateUnusable(str(exc), param="cogenesis.gate") from exc


async def _cancel_on_disconnect(request: Request, cancel: threading.Event) -> None:
    """Set ``cancel`` when the client hangs up (the body is read: only that comes now)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return


async def _set(cancel: threading.Event) -> None:
    cancel.set()


_DONE = object()


async def _events(
    gateway: Gateway,
    job: CompletionJob,
    cid: str,
    model: Mode,
    include_usage: bool,
    cancel: threading.Event,
) -> AsyncIterator[str]:
    """Run the job in a worker thread and relay its text as server-sent events.

    With ``include_usage`` every chunk has ``"usage": null`` and a last chunk, with no
    choices, has the usage of the whole request (OpenAI's ``stream_options``).
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[Any] = asyncio.Queue()

    def put(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(items.put_nowait, item)
        except RuntimeError:  # the server's loop is gone: nobody is listening
            cancel.set()

    def work() -> None:
        try:
            put(gateway.execute(job, put, cancel))
        except Exception as exc:  # reported in-band: the HTTP status is already sent
            log_unexpected(exc, "a streamed completion")
            put(exc)
        finally:
            put(_DONE)

    def event(chunk: dict[str, Any]) -> str:
        if include_usage:
            chunk["usage"] = None
        return json.dumps(chunk)

    threading.Thread(target=work, daemon=True, name="edge-stream").start()
    try:
        yield event(chat_chunk(cid, model, {"role": "assistant", "content": ""}))
        while (item := await items.get()) is not _DONE:
            if isinstance(item, str):
                if item:
                    yield event(chat_chunk(cid, model, {"content": item}))
            elif isinstance(item, CompletionReport):
                yield event(chat_chunk(cid, model, {}, item))
                if include_usage:
                    usage = chat_chunk(cid, model, {}, None)
                    usage["choices"] = []
                    usage["usage"] = usage_of(item)
                    yield json.dumps(usage)
            else:
                # The exception's text may hold private context: the log has it, not the app.
                message = "generation failed; see the edge's log"
                yield json.dumps(openai_error(message, "server_error", "generation_failed"))
        yield "[DONE]"
    finally:
        cancel.set()  # the client went away (or the stream ended): stop generating
