"""Errors the edge answers with, in OpenAI's error shape, and the one place they are sent.

    ApiError                  a client-caused error: an HTTP status, a code, maybe a param
    ├── BadDataset            400 bad_dataset          (an import body, nothing imported)
    ├── UserRequired          400 user_required        (no `user` in a chat completion)
    ├── NoTask                400 no_task              (no last user message)
    ├── ModelNotFound         404 model_not_found      (`model` names no mode)
    ├── UnknownUser           404 user_not_found
    └── VocabularyConflict    409 vocabulary_mismatch  (logits mode, other cloud tokenizer)

Request validation (400 invalid_request, or bad_json) and Starlette's own HTTP errors
(http_<status>) are answered in the same shape by `install_error_handlers`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    status: int = 400
    code: str = "invalid_request"
    type: str = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class BadDataset(ApiError):
    status, code = 400, "bad_dataset"


class UserRequired(ApiError):
    status, code = 400, "user_required"


class NoTask(ApiError):
    status, code = 400, "no_task"


class ModelNotFound(ApiError):
    status, code = 404, "model_not_found"


class UnknownUser(ApiError):
    status, code = 404, "user_not_found"


class VocabularyConflict(ApiError):
    status, code = 409, "vocabulary_mismatch"


def openai_error(message: str, type_: str, code: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            openai_error(exc.message, exc.type, exc.code, exc.param), status_code=exc.status
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse(
                openai_error("request body is not valid JSON", "invalid_request_error", "bad_json"),
                status_code=400,
            )
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
            for e in errors[:5]
        )
        return JSONResponse(
            openai_error(
                message or "invalid request",
                "invalid_request_error",
                "invalid_request",
                where or None,
            ),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            openai_error(str(exc.detail), "invalid_request_error", f"http_{exc.status_code}"),
            status_code=exc.status_code,
        )
