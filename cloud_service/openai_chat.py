"""OpenAI-compatible chat on the cloud's engine: ``POST /v1/chat/completions`` (plain and
server-sent events) and ``GET /v1/models``, as vLLM's server offers them.

This is what the research tools (dataset synthesis, the judge, the cloud-only baselines)
call, so they run the same on this service, on vLLM's server or on a hosted API. It sits
behind the same guard as every /v1 route (bearer token, body size), and generates
through the same admission queue and token quotas as sketches and sessions: past the
queue a chat gets 503 with Retry-After, which OpenAI's clients wait out and retry. Private context
never comes here from the edge: the edge talks to the cloud only through its sketch
and session routes.

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, and a
parameter this engine cannot honour is a 400 that names it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from cloud_service.engine_work import EngineWork, client_gone
from cloud_service.engines import Engine
from cloud_service.engines.streaming import ChatStream, SamplingOptions
from cloud_service.errors import (
    ClientGone,
    CloudError,
    ErrorBody,
    Overloaded,
    RateLimited,
    error_responses,
)
from cloud_service.middleware import retry_after_header

log = logging.getLogger("cloud_service.openai_chat")

MAX_MESSAGES = 256
MAX_STOP_STRINGS = 4  # OpenAI's limit


class _TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_TextPart]
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class _ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]  # json_object / json_schema need constrained decoding: not here


class OpenAIChatRequest(BaseModel):
    """The subset of OpenAI's chat request this engine honours; anything else is refused."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    n: Literal[1] | None = None
    user: str | None = None
    response_format: _ResponseFormat | None = None
    presence_penalty: Literal[0] | None = None
    frequency_penalty: Literal[0] | None = None

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings")
        return value

    def messages_for_template(self) -> list[dict[str, str]]:
        # "developer" is OpenAI's newer name for the system role.
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]

    def sampling(self, n_ctx: int) -> SamplingOptions:
        """The request's sampling, with this server's defaults filled in (one place)."""
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return SamplingOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens or n_ctx,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=self.seed,
            stop=tuple(s for s in stop if s),
        )


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        param: str | None = None,
        *,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.retry_after_s = retry_after_s

    @classmethod
    def retry_later(cls, exc: Overloaded | RateLimited) -> OpenAIError:
        """A shed or over-quota request, in OpenAI's shape, keeping its Retry-After."""
        return cls(exc.status, exc.message, exc.code, retry_after_s=exc.retry_after_s)

    def response(self) -> JSONResponse:
        response = JSONResponse(
            error_body(self.message, self.code, self.param), status_code=self.status
        )
        if self.retry_after_s is not None:
            name, value = retry_after_header(self.retry_after_s)
            response.headers[name.decode()] = value.decode()
        return response


class _OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class OpenAIErrorBody(BaseModel):
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""

    error: _OpenAIErrorDetail


_OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OpenAIErrorBody, "description": "a parameter is wrong or unsupported (`param`)"},
    404: {"model": OpenAIErrorBody, "description": "the model is not the one served here"},
    # The guard's requests-per-minute refusal comes in the cloud's shape, the token quota
    # (charged once admitted) in OpenAI's.
    429: {
        "model": ErrorBody | OpenAIErrorBody,
        "description": "the tenant is past its requests or tokens per minute (`rate_limited`); "
        "with Retry-After",
    },
    503: {
        "model": OpenAIErrorBody,
        "description": "the engine's queue is full, or the request waited too long in it "
        "(`overloaded`); with Retry-After",
    },
}


def error_body(message: str, code: str, param: str | None = None) -> dict[str, Any]:
    server_side = code in ("internal_error", Overloaded.code)
    kind = "server_error" if server_side else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class _AdmittedStream(StreamingResponse):
    """Server-sent events that hold an engine slot, and the stream's lane, until the
    answer ends however it ends: read to the end, failed, or left by the client."""

    def __init__(self, events: Iterator[str], held: ExitStack) -> None:
        super().__init__(events, media_type="text/event-stream")
        self._held = held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:
            pass  # the client left: nobody to answer
        finally:
            # Off the event loop: closing the stream waits for the engine's lock.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._held.close)


def router(engine: Engine, work: EngineWork) -> APIRouter:
    """The routes, bound to one engine; generation goes through admission (``work``),
    like every route that computes, and never runs on the event loop."""
    routes = APIRouter()

    @routes.get("/v1/models", responses=error_responses(401))
    def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": engine.model_id, "object": "model", "owned_by": "cogenesis"}],
        }

    # 401 and 413 come from the guard middleware, in the cloud's own error shape.
    @routes.post("/v1/chat/completions", responses={**error_responses(401, 413), **_OPENAI_ERRORS})
    async def chat_completions(request: Request) -> Response:
        # The body is read here, not by FastAPI, so that bad JSON too gets OpenAI's error.
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return OpenAIError(400, "the body is not valid JSON", "bad_json").response()
        try:
            parsed = _parse(payload, engine)
            # Lazy: this only tokenizes; the tokens are generated once admitted.
            stream = await run_in_threadpool(
                partial(
                    engine.stream_chat,
                    parsed.messages_for_template(),
                    parsed.sampling(engine.n_ctx),
                    cancelled=client_gone(request).is_set,  # stop at the next token
                )
            )
        except OpenAIError as exc:
            return exc.response()
        except CloudError as exc:  # e.g. the prompt does not fit the context
            return OpenAIError(400, exc.message, exc.code, "messages").response()
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        # The budget asked for is charged, as for a sketch: the cost is known only after.
        try:
            if not parsed.stream:
                text = await work.run(request, stream.text, tokens=stream.budget)
                return JSONResponse(_completion(cid, engine.model_id, text, stream))
            held = await work.admit(request, tokens=stream.budget)
        except (Overloaded, RateLimited) as exc:
            return OpenAIError.retry_later(exc).response()
        held.callback(stream.close)  # first the lane, then the slot
        usage = parsed.stream_options is not None and parsed.stream_options.include_usage
        # A sync iterator: Starlette pulls it from a worker thread, token by token.
        return _AdmittedStream(_events(stream, cid, engine.model_id, usage), held)

    return routes


def _parse(payload: Any, engine: Engine) -> OpenAIChatRequest:
    if not isinstance(payload, dict):
        raise OpenAIError(400, "the body must be a JSON object", "invalid_request_error")
    try:
        request = OpenAIChatRequest.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
        param = _base_param(first["loc"])
        if first["type"] == "extra_forbidden":
            message = f"unsupported parameter: {where}"
        else:
            message = f"{where}: {first['msg']}"
        raise OpenAIError(400, message, "invalid_request_error", param) from exc
    if request.model != engine.model_id:
        raise OpenAIError(
            404,
            f"the model {request.model!r} does not exist; this server serves {engine.model_id!r}",
            "model_not_found",
            "model",
        )
    return request


def _base_param(loc: tuple[Any, ...]) -> str:
    """'messages[0].content' style name of the field at fault (OpenAI's ``param``)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "list[_TextPart]", "literal['text']") or str(part).startswith(
            "function-"
        ):
            continue  # pydantic's names of union branches
        else:
            out += f".{part}" if out else str(part)
    return out


def _completion(cid: str, model: str, text: str, stream: ChatStream) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": stream.finish_reason,
            }
        ],
        "usage": _usage(stream),
    }


def _usage(stream: ChatStream) -> dict[str, int]:
    return {
        "prompt_tokens": stream.prompt_tokens,
        "completion_tokens": stream.completion_tokens,
        "total_tokens": stream.prompt_tokens + stream.completion_tokens,
    }


def _events(stream: ChatStream, cid: str, model: str, include_usage: bool) -> Iterator[str]:
    """Server-sent events in OpenAI's order. A sync generator: Starlette pulls it from a
    worker thread, and stops pulling (so decoding stops) when the client goes away."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        for piece in stream:
            yield chunk({"content": piece})
    except ClientGone:
        return  # nobody reads on
    except Exception:  # the status line is sent: report in-band, as OpenAI does
        log.exception("chat generation failed")
        yield f"data: {json.dumps(error_body('generation failed', 'internal_error'))}\n\n"
        return
    yield chunk({}, stream.finish_reason)
    if include_usage:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(stream),
        }
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"
