"""Liveness: answers without touching the model, the store or the cloud."""

from __future__ import annotations

from fastapi import APIRouter

from edge_agent.errors import error_responses

router = APIRouter()


@router.get("/healthz", responses=error_responses(400))  # 400: a Host the edge does not answer
def healthz() -> dict:
    return {"status": "ok"}
