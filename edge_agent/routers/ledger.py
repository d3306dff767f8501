"""The privacy ledger: every byte that left the device, page by page."""

from __future__ import annotations

from fastapi import APIRouter, Query

from edge_agent.dependencies import Services
from edge_agent.limits import MAX_LEDGER_PAGE

router = APIRouter()


@router.get("/v1/ledger")
def ledger(
    svc: Services,
    user: str | None = None,
    mode: str | None = None,
    since: float | None = Query(None, description="unix time, inclusive"),
    until: float | None = Query(None, description="unix time, exclusive"),
    limit: int = Query(50, ge=1, le=MAX_LEDGER_PAGE),
    offset: int = Query(0, ge=0),
) -> dict:
    rows, total = svc.store.ledger.query(
        user_id=user, mode=mode, since=since, until=until, limit=limit, offset=offset
    )
    return {"object": "list", "total": total, "data": [r.model_dump(mode="json") for r in rows]}
