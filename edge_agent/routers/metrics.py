"""Prometheus metrics of this edge (edge_agent.metrics): counts only, never ids or text."""

from __future__ import annotations

from fastapi import APIRouter, Response

from edge_agent.dependencies import Services

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(svc: Services) -> Response:
    return Response(svc.metrics.render(), media_type=svc.metrics.content_type)
