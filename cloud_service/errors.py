"""Errors the cloud answers with. Each maps to one wire code and one 4xx status."""

from __future__ import annotations


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
