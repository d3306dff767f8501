"""Prometheus metrics of this edge (edge_agent.metrics): counts only, never ids or text.

An admin key reads them (any caller when keys are off, on loopback only).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from edge_agent.auth import Admin
from edge_agent.dependencies import Services

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(svc: Services, _: Admin) -> Response:
    return Response(svc.metrics.render(), media_type=svc.metrics.content_type)
