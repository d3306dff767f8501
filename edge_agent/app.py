"""The edge agent's local HTTP endpoint: OpenAI-compatible chat, profiles, ledger, keys
and the privacy page.

`create_app` wires the services (services.py), the error handlers (errors.py), the
access checks (auth/: Host and origin here, keys as each route's dependency) and one
router per resource (routers/); routes reach the services through dependencies.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from edge_agent.auth.banner import check_auth_mode
from edge_agent.auth.host import HostPolicy, LocalOnlyMiddleware
from edge_agent.body_limit import BodyLimitMiddleware
from edge_agent.errors import install_error_handlers
from edge_agent.recovery import recover
from edge_agent.routers import chat, health, keys, ledger, metrics, page, profiles
from edge_agent.services import EdgeServices, build_services
from edge_agent.settings import EdgeSettings

__all__ = ["EdgeServices", "build_services", "create_app"]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Before the first request: put right what a stopped edge left behind.
    services = app.state.services
    app.state.session_closer = recover(services.store, services.cloud)
    app.state.session_closer.start()
    try:
        yield
    finally:
        app.state.session_closer.stop()


def create_app(
    settings: EdgeSettings | None = None,
    *,
    services: EdgeServices | None = None,
) -> FastAPI:
    settings = settings or EdgeSettings()
    check_auth_mode(settings)  # keys off is for loopback only
    app = FastAPI(
        title="CoGenesis edge agent", version="0.1.0", redirect_slashes=False, lifespan=_lifespan
    )
    app.state.services = services or build_services(settings)
    # Added innermost first: the Host and origin checks see every request before the rest.
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["authorization", "content-type"],
        )
    policy = HostPolicy(settings.host, settings.allowed_hosts, settings.cors_origins)
    app.add_middleware(LocalOnlyMiddleware, policy=policy)
    for module in (health, chat, profiles, ledger, keys, metrics):
        app.include_router(module.router)
    page.install(app)
    return app
