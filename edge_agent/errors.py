"""Errors the edge answers with, in OpenAI's error shape, and the one place they are sent.

    ApiError                  a client-caused error: an HTTP status, a code, maybe a param
    ├── BadDataset            400 bad_dataset          (an import body, nothing imported)
    ├── BadQuery              400 invalid_request      (e.g. a ledger time that is NaN)
    ├── UserRequired          400 user_required        (no `user` in a chat completion)
    ├── NoTask                400 no_task              (no last user message)
    ├── GateNotAvailable      400 gate_not_found       (lists the gates there are)
    ├── GateUnusable          400 gate_unusable        (the named gate file is broken)
    ├── ContextTooLong        400 context_length_exceeded  (nothing was sent)
    ├── MissingKey            401 missing_api_key
    ├── InvalidKey            401 invalid_api_key      (unknown, malformed or revoked)
    ├── PermissionDenied      403 permission_denied    (another user's data, admin routes)
    ├── ModelNotFound         404 model_not_found      (`model` names no mode)
    ├── UnknownUser           404 user_not_found
    ├── UnknownKey            404 key_not_found
    ├── UserConflict          409 user_exists
    ├── Unexportable          409 unexportable_profile (stored by an older release)
    └── VocabularyConflict    409 vocabulary_mismatch  (logits mode, other cloud tokenizer)

Request validation (400 invalid_request, or bad_json) and Starlette's own HTTP errors
(http_<status>) are answered in the same shape by `install_error_handlers`. So is
anything unexpected: logged, and answered with a generic 500 that holds no request text,
on a connection that stays usable. The Host, origin and body-size checks answer from
their middleware in the same shape (400 host_not_allowed, 403 cross_site_request,
415 unsupported_media_type, 413 payload_too_large).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared_protocol import catch_all

log = logging.getLogger("edge_agent")


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


class BadQuery(ApiError):
    status, code = 400, "invalid_request"


class UserRequired(ApiError):
    status, code = 400, "user_required"


class NoTask(ApiError):
    status, code = 400, "no_task"


class GateNotAvailable(ApiError):
    status, code = 400, "gate_not_found"


class GateUnusable(ApiError):
    status, code = 400, "gate_unusable"


class ContextTooLong(ApiError):
    status, code = 400, "context_length_exceeded"


class MissingKey(ApiError):
    status, code = 401, "missing_api_key"


class InvalidKey(ApiError):
    status, code = 401, "invalid_api_key"


class PermissionDenied(ApiError):
    status, code = 403, "permission_denied"


class ModelNotFound(ApiError):
    status, code = 404, "model_not_found"


class UnknownUser(ApiError):
    status, code = 404, "user_not_found"


class UnknownKey(ApiError):
    status, code = 404, "key_not_found"


class UserConflict(ApiError):
    status, code = 409, "user_exists"


class Unexportable(ApiError):
    status, code = 409, "unexportable_profile"


class VocabularyConflict(ApiError):
    status, code = 409, "vocabulary_mismatch"


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, or server_error for a 500")
    param: str | None = Field(description="the request field at fault, if one is")
    code: str


class ErrorBody(BaseModel):
    """Every error answer of the edge: OpenAI's error shape."""

    error: ErrorDetail


_WHEN = {
    400: "bad input: validation (`invalid_request`), bad JSON (`bad_json`), a Host the edge "
    "does not answer (`host_not_allowed`), a prompt over the context "
    "(`context_length_exceeded`), ...",
    401: "no key, or not a valid one (`missing_api_key`, `invalid_api_key`)",
    403: "the key may not do this (`permission_denied`), or a request from another site "
    "(`cross_site_request`)",
    404: "no such model, user or key",
    409: "conflicts with what is stored",
    413: "the body is over the size limit (`payload_too_large`)",
    415: "a body that is not JSON (`unsupported_media_type`)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these statuses, each with the one error body."""
    return {status: {"model": ErrorBody, "description": _WHEN[status]} for status in statuses}


def openai_error(message: str, type_: str, code: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# A part of a location that is a field name; anything else (a dict key, say) may be text
# the user typed, and is not echoed.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _where(loc: Any) -> str:
    parts = [p for p in loc if p != "body"]
    return ".".join(
        str(p) if isinstance(p, int) or _FIELD_NAME.fullmatch(str(p)) else "<key>" for p in parts
    )


def log_unexpected(exc: BaseException, where: str) -> None:
    """Log an unexpected error by type and traceback, without its message: a message can
    quote private context (a prompt, a profile value), and logs must not."""
    catch_all.log_unexpected(log, exc, where)


def _spec_with_real_statuses(app: FastAPI) -> None:
    """FastAPI documents a 422 for every route that validates input; the edge answers
    those with a 400 in the error body above (which each route documents), so the spec
    drops the 422 and its schemas."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            for operations in spec.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = spec.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    # Innermost of the edge's middleware: see shared_protocol/catch_all.py.
    internal = openai_error("internal error; see the edge's log", "server_error", "internal_error")
    app.add_middleware(catch_all.CatchAllMiddleware, log=log, body=internal)
    _spec_with_real_statuses(app)

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
        where = _where(first.get("loc", ()))
        # Messages only: pydantic's never quote the input, and the locations are masked.
        message = "; ".join(f"{_where(e.get('loc', ()))}: {e.get('msg')}" for e in errors[:5])
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
