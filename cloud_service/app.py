"""`create_app(settings, engine=None)`: the cloud routes, tenants, limits and error shape.

Work that touches the engine, on every route, runs through ``EngineWork``
(engine_work.py): behind the admission queue, in threads of its own pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud_service.admission import Admission
from cloud_service.engine_work import EngineWork, client_gone, tenant_of
from cloud_service.engines import ChatResult, Engine, TopKRow, build_engine
from cloud_service.errors import (
    ClientGone,
    CloudError,
    SessionNotFound,
    ValidationFailed,
    error_responses,
)
from cloud_service.metrics import CloudMetrics
from cloud_service.middleware import (
    CLIENT_CLOSED_STATUS,
    GuardMiddleware,
    MetricsMiddleware,
    RequestRecorder,
    retry_after_header,
)
from cloud_service.openai_chat import router as openai_chat_router
from cloud_service.quotas import TenantQuotas
from cloud_service.sessions import OpenedSession, SessionRegistry
from cloud_service.settings import CloudSettings
from cloud_service.sketch import (
    SKETCH_SYSTEM,
    outline_complete,
    parse_points,
    sketch_user_message,
)
from cloud_service.sketch_stream import PING_S, SSE_DOC, OutlineRelay
from shared_protocol import limits
from shared_protocol.catch_all import CatchAllMiddleware
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


class NoTenants(ValueError):
    """No token is configured: nobody could call the service."""


def create_app(settings: CloudSettings, engine: Engine | None = None) -> FastAPI:
    """Build the app. Loads the engine from settings when none is given.

    Raises NoTenants when no token is configured, TenantsFileError for a bad file.
    """
    tenants = settings.tenant_directory()
    if not len(tenants):
        raise NoTenants(
            "no tenant is configured, so nobody could call this service: set "
            "COGENESIS_CLOUD_TOKEN, COGENESIS_CLOUD_TENANTS or COGENESIS_CLOUD_TENANTS_FILE"
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
    metrics = CloudMetrics()
    admission = Admission(
        settings.engine_slots or engine.max_concurrency,
        settings.max_queue,
        settings.queue_timeout_s,
        on_event=metrics.admission_event,
    )
    metrics.watch(
        sessions_open=lambda: len(registry),
        queue_depth=lambda: admission.waiting,
        engine_active=lambda: admission.active,
    )
    quotas = TenantQuotas()
    work = EngineWork(admission, quotas)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = registry
    recorder = RequestRecorder(settings.record_requests_to) if settings.record_requests_to else None
    _add_error_handlers(app)
    metrics_token = settings.metrics_token
    app.add_middleware(
        GuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        tenants=tenants,
        quotas=quotas,
        metrics_token=metrics_token.get_secret_value() if metrics_token else None,
        recorder=recorder,
    )
    # Added last, so outermost: it also times and counts what the guard refuses.
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    _document_bearer_auth(app)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def get_metrics() -> Response:  # GuardMiddleware checks the metrics token
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/info", response_model=InfoResponse, responses=error_responses(401, 429))
    async def get_info() -> InfoResponse:
        return info

    @app.post(
        "/v1/sketch",
        response_model=SketchResponse,
        responses=error_responses(400, 401, 413, 422, 429, 503),
    )
    async def sketch(request: SketchRequest, http: Request) -> SketchResponse:
        tenant, gone = tenant_of(http), client_gone(http)
        reply = await work.run(
            http,
            lambda: engine.chat(
                SKETCH_SYSTEM,
                sketch_user_message(request.instruction, request.max_points),
                max_tokens=request.max_tokens,
                stop=lambda text: outline_complete(text, request.max_points),
                cancelled=gone.is_set,  # a client that left: stop at the next token
            ),
            # The cost is known only afterwards: the budget asked for is charged.
            tokens=request.max_tokens,
        )
        metrics.scored(tenant.name, reply.prompt_tokens)
        metrics.generated(tenant.name, reply.completion_tokens)
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
        "/v1/sketch/stream",
        response_class=EventSourceResponse,
        responses={
            200: {"description": SSE_DOC, "content": {"text/event-stream": {}}},
            **error_responses(400, 401, 413, 422, 429, 503),
        },
    )
    async def sketch_stream(request: SketchRequest, http: Request) -> EventSourceResponse:
        tenant, gone = tenant_of(http), client_gone(http)
        relay = OutlineRelay(request, asyncio.get_running_loop())

        def generate() -> ChatResult:
            try:
                return engine.chat(
                    SKETCH_SYSTEM,
                    sketch_user_message(request.instruction, request.max_points),
                    max_tokens=request.max_tokens,
                    stop=relay.stop_hint,
                    cancelled=gone.is_set,
                )
            finally:
                relay.close()

        def counted(reply: ChatResult) -> None:
            metrics.scored(tenant.name, reply.prompt_tokens)
            metrics.generated(tenant.name, reply.completion_tokens)

        running = await work.start(http, generate, tokens=request.max_tokens)
        # Pings show a live cloud between points (the edge has a per-read timeout).
        return EventSourceResponse(relay.events(running, engine.model_id, counted), ping=PING_S)

    @app.post(
        "/v1/sessions",
        response_model=SessionOpenResponse,
        response_model_exclude_none=True,
        status_code=201,
        responses=error_responses(400, 401, 409, 413, 422, 429, 503),
    )
    async def open_session(request: SessionOpenRequest, http: Request) -> SessionOpenResponse:
        tenant = tenant_of(http)
        if request.prompt_token_ids is not None:
            prompt = list(request.prompt_token_ids)
        else:
            assert request.prompt is not None  # the model validator guarantees one of them
            prompt = await anyio.to_thread.run_sync(
                engine.chat_prompt_tokens, request.system, request.prompt
            )
        committed, draft = prompt + list(request.append or ()), list(request.draft or ())
        limit = tenant.limits.max_sessions

        def reopen() -> OpenedSession:
            if request.replaces is not None:  # this replica may still hold the lost one
                with contextlib.suppress(SessionNotFound):
                    registry.close(request.replaces, owner=tenant.name)
            return registry.open(
                committed, request.top_k, draft=draft, owner=tenant.name, owner_limit=limit
            )

        opened = await work.run(http, reopen, tokens=len(committed) + len(draft))
        metrics.scored(tenant.name, len(committed) + len(draft))
        return SessionOpenResponse(
            session_id=opened.session_id,
            prompt_tokens=len(prompt),
            top_k=opened.top_k,
            idle_timeout_s=registry.idle_timeout_s,
            next=_wire(opened.next),
            draft_positions=[_wire(row) for row in opened.draft_positions] if draft else None,
        )

    @app.post(
        "/v1/sessions/{session_id}/step",
        response_model=SessionStepResponse,
        responses=error_responses(400, 401, 404, 409, 413, 422, 429, 503),
    )
    async def step_session(
        session_id: str, request: SessionStepRequest, http: Request
    ) -> SessionStepResponse:
        tenant = tenant_of(http)
        scored = len(request.append) + len(request.draft)
        result = await work.run(
            http,
            lambda: registry.step(
                session_id,
                accept=request.accept,
                append=request.append,
                draft=request.draft,
                propose=request.propose,
                top_k=request.top_k,
                owner=tenant.name,
            ),
            tokens=scored + request.propose,
        )
        metrics.scored(tenant.name, scored)
        return SessionStepResponse(
            positions=[_wire(row) for row in result.positions],
            session_tokens=result.session_tokens,
            proposed=result.proposed,
        )

    @app.delete(
        "/v1/sessions/{session_id}", status_code=204, responses=error_responses(401, 404, 422, 429)
    )
    def close_session(session_id: str, http: Request) -> Response:
        registry.close(session_id, owner=tenant_of(http).name)
        return Response(status_code=204)

    app.include_router(openai_chat_router(engine, work))

    return app


def _document_bearer_auth(app: FastAPI) -> None:
    """The token check is middleware, which FastAPI cannot see: say so in the spec."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = build()
            schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["CloudToken"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "a tenant's token (tenants file, COGENESIS_CLOUD_TENANTS or "
                "COGENESIS_CLOUD_TOKEN)",
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


def _error(
    status: int, code: str, message: str, retry_after_s: float | None = None
) -> JSONResponse:
    response = JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
    if retry_after_s is not None:
        name, value = retry_after_header(retry_after_s)
        response.headers[name.decode()] = value.decode()
    return response


def _add_error_handlers(app: FastAPI) -> None:
    """The error shape for every known error, and the catch-all for the rest: added
    before any other middleware, so innermost, so the metrics count its 500s."""
    internal = {
        "error": {"code": "internal_error", "message": "internal error; see the server log"}
    }
    app.add_middleware(CatchAllMiddleware, log=log, body=internal)

    @app.exception_handler(CloudError)
    async def cloud_error(_: Request, exc: CloudError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.retry_after_s)

    @app.exception_handler(ClientGone)
    async def client_gone_error(_: Request, exc: ClientGone) -> Response:
        return Response(status_code=CLIENT_CLOSED_STATUS)  # nobody reads it

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


def _describe(errors: list[dict]) -> str:
    """One readable line per problem, without echoing the input (it may be private)."""
    parts = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "; ".join(parts)
