"""Errors the cloud answers with. Each maps to one wire code and one 4xx status."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class CloudError(Exception):
    """A client-caused error: sent as ``{"error": {"code", "message"}}`` with ``status``."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Sent as a Retry-After header (whole seconds, at least 1) when set.
        self.retry_after_s = retry_after_s


class BadJson(CloudError):
    status, code = 400, "bad_json"


class Unauthorized(CloudError):
    status, code = 401, "unauthorized"


class SessionNotFound(CloudError):
    status, code = 404, "session_not_found"


class SessionTokenCap(CloudError):
    status, code = 409, "session_token_cap"


class PayloadTooLarge(CloudError):
    status, code = 413, "payload_too_large"


class ValidationFailed(CloudError):
    status, code = 422, "validation_error"


class ContextOverflow(ValidationFailed):
    """The prompt leaves no room in the engine's context window."""


class TokenOutOfRange(CloudError):
    status, code = 422, "token_out_of_range"


class TopKTooLarge(CloudError):
    status, code = 422, "top_k_too_large"


class TooManySessions(CloudError):
    status, code = 429, "too_many_sessions"


class RateLimited(CloudError):
    """A tenant went past its requests or tokens per minute."""

    status, code = 429, "rate_limited"


class Overloaded(CloudError):
    """The engine's queue is full, or a request waited in it too long: shed, not run."""

    status, code = 503, "overloaded"


class ClientGone(Exception):
    """The client disconnected; its work was dropped. No answer is sent."""


class EngineUnavailable(RuntimeError):
    """The engine cannot start (missing package or model file). Not a request error."""


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


_WHEN = {
    400: "the body is not valid JSON (`bad_json`)",
    401: "missing or wrong bearer token (`unauthorized`)",
    404: "no such session, or it expired (`session_not_found`)",
    409: "the session would pass its token cap (`session_token_cap`)",
    413: "the body is over the size limit (`payload_too_large`)",
    422: "the body does not validate (`validation_error`, `token_out_of_range`, `top_k_too_large`)",
    429: "too many open sessions (`too_many_sessions`), or the tenant is past its requests "
    "or tokens per minute (`rate_limited`); with Retry-After",
    503: "the engine's queue is full, or the request waited too long in it (`overloaded`); "
    "with Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the one error body."""
    return {status: {"model": ErrorBody, "description": _WHEN[status]} for status in statuses}
