"""The edge agent's local HTTP endpoint: OpenAI-compatible chat, profiles and ledger.

`create_app` wires the services (services.py), the error handlers (errors.py) and one
router per resource (routers/); routes reach the services through dependencies.py.
"""

from __future__ import annotations

from fastapi import FastAPI

from edge_agent.body_limit import BodyLimitMiddleware
from edge_agent.errors import install_error_handlers
from edge_agent.routers import chat, health, ledger, metrics, profiles
from edge_agent.services import EdgeServices, build_services
from edge_agent.settings import EdgeSettings

__all__ = ["EdgeServices", "build_services", "create_app"]


def create_app(
    settings: EdgeSettings | None = None,
    *,
    services: EdgeServices | None = None,
) -> FastAPI:
    settings = settings or EdgeSettings()
    app = FastAPI(title="CoGenesis edge agent", version="0.1.0")
    app.state.services = services or build_services(settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    for module in (health, chat, profiles, ledger, metrics):
        app.include_router(module.router)
    return app
