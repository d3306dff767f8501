"""FastAPI dependencies shared by the routers: the app's services, typed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from edge_agent.services import EdgeServices


def get_services(request: Request) -> EdgeServices:
    return request.app.state.services


Services = Annotated[EdgeServices, Depends(get_services)]
