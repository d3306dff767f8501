"""`create_app(settings, engine=None)`: the cloud routes, auth, limits and error shape.

Endpoints that touch the engine are plain ``def``: FastAPI runs them in its threadpool,
so a decode never blocks the event loop.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud_service.engines import Engine, TopKRow, build_engine
from cloud_service.errors import CloudError, ValidationFailed, error_responses
from cloud_service.middleware import GuardMiddleware, RequestRecorder
from cloud_service.sessions import SessionRegistry
from cloud_service.settings import CloudSettings
from cloud_service.sketch import (
    SKETCH_SYSTEM,
    outline_complete,
    parse_points,
    sketch_user_message,
)
from shared_protocol import limits
from shared_protocol.hosts import is_loopback
from shared_protocol.messages import (
    InfoResponse,
    SessionOpenRequest,
    SessionOpenResponse,
    SessionStepRequest,
    SessionStepResponse,
    SketchRequest,
    SketchResponse,
    TopK,
)

log = logging.getLogger("cloud_service")

_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def create_app(settings: CloudSettings, engine: Engine | None = None) -> FastAPI:
    """Build the app. Loads the engine from settings when none is given."""
    if not settings.auth_enabled and not is_loopback(settings.host):
        raise ValueError(
            f"refusing to serve on {settings.host} without a token: set COGENESIS_CLOUD_TOKEN"
        )
    engine = engine if engine is not None else build_engine(settings)
    registry = SessionRegistry(
        engine,
        idle_timeout_s=settings.session_idle_timeout_s,
        max_sessions=settings.max_sessions,
        max_top_k=min(settings.max_top_k, limits.MAX_TOP_K),
        max_tokens=settings.max_session_tokens,
    )
    info = InfoResponse(
        engine=engine.name,
        model_id=engine.model_id,
        vocab_size=engine.vocab_size,
        tokenizer_fingerprint=engine.tokenizer_fingerprint,
        max_top_k=registry.max_top_k,
        max_session_tokens=registry.max_tokens,
        capabilities=list(engine.capabilities),
    )

    app = FastAPI(
        title="CoGenesis cloud service",
        version=limits.PROTOCOL_VERSION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",  # public, like /healthz: it holds no secret
        redirect_slashes=False,  # exact paths only: a redirect is not an API answer
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = registry
    recorder = RequestRecorder(settings.record_requests_to) if settings.record_requests_to else None
    app.add_middleware(
        GuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        token=settings.token_value(),
        recorder=recorder,
    )
    _add_error_handlers(app)
    _document_bearer_auth(app, enabled=settings.token_value() is not None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/info", response_model=InfoResponse, responses=error_responses(401))
    def get_info() -> InfoResponse:
        return info

    @app.post(
        "/v1/sketch", response_model=SketchResponse, responses=error_responses(400, 401, 413, 422)
    )
    def sketch(request: SketchRequest) -> SketchResponse:
        reply = engine.chat(
            SKETCH_SYSTEM,
            sketch_user_message(request.instruction, request.max_points),
            max_tokens=request.max_tokens,
            stop=lambda text: outline_complete(text, request.max_points),
        )
        points = parse_points(
            reply.text,
            request.max_points,
            fallback=request.instruction,
            cut_off=reply.completion_tokens >= request.max_tokens,
        )
        return SketchResponse(
            points=points,
            model_id=engine.model_id,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
        )

    @app.post(
        "/v1/sessions",
        response_model=SessionOpenResponse,
        status_code=201,
        responses=error_responses(400, 401, 409, 413, 422, 429),
    )
    def open_session(request: SessionOpenRequest) -> SessionOpenResponse:
        if request.prompt_token_ids is not None:
            tokens = list(request.prompt_token_ids)
        else:
            assert request.prompt is not None  # the model validator guarantees one of them
            tokens = engine.chat_prompt_tokens(request.system, request.prompt)
        opened = registry.open(tokens, request.top_k)
        return SessionOpenResponse(
            session_id=opened.session_id,
            prompt_tokens=opened.prompt_tokens,
            top_k=opened.top_k,
            idle_timeout_s=registry.idle_timeout_s,
            next=_wire(opened.next),
        )

    @app.post(
        "/v1/sessions/{session_id}/step",
        response_model=SessionStepResponse,
        responses=error_responses(400, 401, 404, 409, 413, 422),
    )
    def step_session(session_id: str, request: SessionStepRequest) -> SessionStepResponse:
        result = registry.step(
            session_id,
            accept=request.accept,
            append=request.append,
            draft=request.draft,
            top_k=request.top_k,
        )
        return SessionStepResponse(
            positions=[_wire(row) for row in result.positions],
            session_tokens=result.session_tokens,
        )

    @app.delete(
        "/v1/sessions/{session_id}", status_code=204, responses=error_responses(401, 404, 422)
    )
    def close_session(session_id: str) -> Response:
        registry.close(session_id)
        return Response(status_code=204)

    return app


def _document_bearer_auth(app: FastAPI, enabled: bool) -> None:
    """The token check is middleware, which FastAPI cannot see: say so in the spec."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = build()
            if enabled:
                schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
                schemes["CloudToken"] = {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "COGENESIS_CLOUD_TOKEN",
                }
                for path, operations in spec["paths"].items():
                    if path.startswith("/v1/"):
                        for operation in operations.values():
                            operation["security"] = [{"CloudToken": []}]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _wire(row: TopKRow) -> TopK:
    return TopK(token_ids=list(row.token_ids), logprobs=list(row.logprobs))


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CloudError)
    async def cloud_error(_: Request, exc: CloudError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "bad_json", "the request body is not valid JSON")
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in content_type:
            message = "send the body as JSON with 'Content-Type: application/json'"
            return _error(422, ValidationFailed.code, message)
        return _error(422, ValidationFailed.code, _describe(errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal_error", "internal error; see the server log")


def _describe(errors: list[dict]) -> str:
    """One readable line per problem, without echoing the input (it may be private)."""
    parts = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "; ".join(parts)
