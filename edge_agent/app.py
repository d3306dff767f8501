"""The edge agent's local HTTP endpoint: OpenAI-compatible chat, profiles and ledger."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge_agent.body_limit import BodyLimitMiddleware
from edge_agent.gateway import MODES, CompletionJob, Gateway, VocabularyMismatch
from edge_agent.openai_types import (
    ChatCompletionRequest,
    chat_chunk,
    chat_completion,
    completion_id,
    openai_error,
)
from edge_agent.outbound import CloudClient, CloudError
from edge_agent.prefix_cache import PrefixCache
from edge_agent.recovery import SessionCloser, recover
from edge_agent.settings import EdgeSettings
from edge_agent.slm import SmallModel, SmallModelPool
from edge_agent.store import DatasetFormatError, Store, UserNotFound, open_store
from edge_agent.store.cogenesis_format import export_users, import_items
from edge_agent.store.schemas import ProfileIn, ProfileUpdate
from shared_protocol import InfoResponse
from shared_protocol.defaults import default_gguf_path


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


@dataclass
class EdgeServices:
    settings: EdgeSettings
    store: Store
    pool: SmallModelPool
    cloud: CloudClient
    guard: Any
    gateway: Gateway
    cloud_info: InfoResponse | None = None
    session_closer: SessionCloser | None = None


def build_services(
    settings: EdgeSettings,
    *,
    pool: SmallModelPool | None = None,
    guard: Any = None,
) -> EdgeServices:
    store = open_store(settings.db_url)
    if pool is None:
        model_path = settings.model_path or default_gguf_path()
        cache = PrefixCache(settings.prefix_cache_entries, settings.prefix_cache_dir)
        pool = SmallModelPool(
            lambda: SmallModel(
                model_path,
                n_ctx=settings.n_ctx,
                n_threads=settings.n_threads,
                prefix_cache=cache,
            ),
            size=settings.workers,
        )
    if guard is None:
        from edge_agent.guard import PrivacyGuard

        guard = PrivacyGuard()
    cloud = CloudClient(
        settings.cloud_url,
        token=settings.cloud_token,
        ledger=store.ledger,
        timeout_s=settings.cloud_timeout_s,
        connect_timeout_s=settings.cloud_connect_timeout_s,
        retries=settings.cloud_retries,
    )
    gateway = Gateway(settings, pool, cloud, guard)
    return EdgeServices(settings, store, pool, cloud, guard, gateway)


def create_app(
    settings: EdgeSettings | None = None,
    *,
    services: EdgeServices | None = None,
) -> FastAPI:
    settings = settings or EdgeSettings()
    svc = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Before the first request: put right what a stopped edge left behind.
        svc.session_closer = recover(svc.store, svc.cloud)
        svc.session_closer.start()
        try:
            yield
        finally:
            svc.session_closer.stop()

    app = FastAPI(title="CoGenesis edge agent", version="0.1.0", lifespan=lifespan)
    app.state.services = svc
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    def list_models() -> dict:
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "owned_by": "cogenesis"} for m in MODES],
        }

    @app.post("/v1/chat/completions")
    def chat_completions(body: ChatCompletionRequest) -> Response:
        job = _job_from_request(svc, body)
        cid = completion_id()
        if body.stream:
            return StreamingResponse(
                _stream(svc.gateway, job, cid, body.model), media_type="text/event-stream"
            )
        pieces: list[str] = []
        report = svc.gateway.execute(job, pieces.append)
        finish = "length" if report.get("completion_tokens", 0) >= job.max_tokens else "stop"
        return JSONResponse(chat_completion(cid, body.model, "".join(pieces), finish, report))

    @app.post("/v1/profiles", status_code=201)
    def create_profile(body: ProfileIn) -> dict:
        return svc.store.profiles.create_user(body).model_dump(mode="json")

    @app.post("/v1/profiles/import", status_code=201)
    def import_profiles(items: list[dict[str, Any]]) -> dict:
        """Import users from a body in the CoGenesis dataset format (all or nothing)."""
        try:
            report = import_items(items, svc.store.profiles, source="request body")
        except DatasetFormatError as exc:
            raise ApiError(400, f"{exc} (nothing was imported)", "bad_dataset") from exc
        for user_id in report.user_ids:
            _invalidate_prefix(svc, user_id)
        return {"users": [{"id": u.id, "name": u.name} for u in report.users]}

    @app.get("/v1/profiles/export")
    def export_profiles(user: list[str] | None = Query(None)) -> list[dict]:
        """Users in the CoGenesis dataset format (all users, or the given ones)."""
        try:
            return export_users(svc.store.profiles, user)
        except UserNotFound as exc:
            raise ApiError(404, str(exc), "user_not_found", "user") from exc

    @app.get("/v1/profiles")
    def list_profiles() -> dict:
        users = svc.store.profiles.list_users()
        return {"object": "list", "data": [u.model_dump(mode="json") for u in users]}

    @app.get("/v1/profiles/{user_id}")
    def get_profile(user_id: str) -> dict:
        return _user_or_404(svc, user_id).model_dump(mode="json")

    @app.patch("/v1/profiles/{user_id}")
    def update_profile(user_id: str, body: ProfileUpdate) -> dict:
        _user_or_404(svc, user_id)
        updated = svc.store.profiles.update_user(user_id, body)
        _invalidate_prefix(svc, user_id)
        return updated.model_dump(mode="json")

    @app.delete("/v1/profiles/{user_id}", status_code=204)
    def delete_profile(user_id: str, include_ledger: bool = False) -> Response:
        _user_or_404(svc, user_id)
        svc.store.profiles.delete_user(user_id, include_ledger=include_ledger)
        _invalidate_prefix(svc, user_id)
        return Response(status_code=204)

    @app.get("/v1/ledger")
    def ledger(
        user: str | None = None,
        mode: str | None = None,
        since: float | None = Query(None, description="unix time, inclusive"),
        until: float | None = Query(None, description="unix time, exclusive"),
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict:
        rows, total = svc.store.ledger.query(
            user_id=user, mode=mode, since=since, until=until, limit=limit, offset=offset
        )
        return {"object": "list", "total": total, "data": [r.model_dump(mode="json") for r in rows]}

    return app


def _invalidate_prefix(svc: EdgeServices, user_id: str) -> None:
    """Free the user's cached KV prefixes (new data already misses them by key)."""
    for model in svc.pool.models:
        model.prefix_cache.invalidate_user(user_id)


def _user_or_404(svc: EdgeServices, user_id: str):
    try:
        return svc.store.profiles.get_user(user_id)
    except UserNotFound as exc:
        raise ApiError(404, f"unknown user {user_id!r}", "user_not_found") from exc


def _job_from_request(svc: EdgeServices, body: ChatCompletionRequest) -> CompletionJob:
    if body.model not in MODES:
        raise ApiError(
            404,
            f"unknown model {body.model!r}; choose one of {', '.join(MODES)}",
            "model_not_found",
            "model",
        )
    if not body.user:
        raise ApiError(400, "the `user` field must name a stored profile", "user_required", "user")
    try:
        ctx = svc.store.profiles.load_context(body.user)
    except UserNotFound as exc:
        raise ApiError(404, f"unknown user {body.user!r}", "user_not_found", "user") from exc
    user_turns = [m.content for m in body.messages if m.role == "user"]
    if not user_turns or not user_turns[-1].strip():
        raise ApiError(400, "the last user message holds the task; none given", "no_task")
    options = body.cogenesis.model_dump(exclude_none=True) if body.cogenesis else {}
    if body.model == "cogenesis-logits":
        _check_cloud_vocabulary(svc)
    return CompletionJob(
        mode=body.model,
        ctx=ctx,
        task=user_turns[-1].strip(),
        max_tokens=body.max_completion_tokens or body.max_tokens or svc.settings.max_tokens,
        temperature=0.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
        options=options,
    )


def _check_cloud_vocabulary(svc: EdgeServices) -> None:
    """Refuse logits mode up front when the cloud's vocabulary differs from ours.

    A cloud that cannot be reached now is not refused: the answer degrades instead.
    """
    if svc.cloud_info is None:
        try:
            svc.cloud_info = svc.cloud.info()
        except CloudError:
            return
    try:
        svc.gateway.check_vocabulary(svc.cloud_info.model_id, svc.cloud_info.tokenizer_fingerprint)
    except VocabularyMismatch as exc:
        svc.cloud_info = None  # the operator may fix the cloud; ask again next time
        raise ApiError(409, str(exc), "vocabulary_mismatch", "model") from exc


_DONE = object()


def _stream(gateway: Gateway, job: CompletionJob, cid: str, model: str) -> Iterator[str]:
    """Run the job in a worker thread and relay its text as server-sent events."""
    events: queue.Queue[Any] = queue.Queue()

    def work() -> None:
        try:
            events.put(("report", gateway.execute(job, lambda piece: events.put(piece))))
        except Exception as exc:  # reported in-band: the HTTP status is already sent
            events.put(("error", str(exc)))
        finally:
            events.put(_DONE)

    threading.Thread(target=work, daemon=True, name="edge-stream").start()
    yield _sse(chat_chunk(cid, model, {"role": "assistant", "content": ""}))
    while (item := events.get()) is not _DONE:
        if isinstance(item, str):
            yield _sse(chat_chunk(cid, model, {"content": item}))
        elif item[0] == "report":
            report = item[1]
            finish = "length" if report.get("completion_tokens", 0) >= job.max_tokens else "stop"
            yield _sse(chat_chunk(cid, model, {}, finish, report))
        else:
            yield _sse(openai_error(item[1], "server_error", "generation_failed"))
    yield "data: [DONE]\n\n"


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            openai_error(exc.message, "invalid_request_error", exc.code, exc.param),
            status_code=exc.status,
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
