"""The privacy ledger: every byte that left the device, page by page.

A user key sees only its own user's entries; an admin key any user's, or all.
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from edge_agent.auth import Caller
from edge_agent.dependencies import Services
from edge_agent.errors import BadQuery, error_responses
from edge_agent.limits import MAX_LEDGER_PAGE
from edge_agent.store import InvalidQuery
from edge_agent.store.ledger import MAX_OFFSET

router = APIRouter()


@router.get("/v1/ledger", responses=error_responses(400, 401, 403))
def ledger(
    svc: Services,
    caller: Caller,
    user: str | None = Query(None, description="one user's entries (a user key: its own)"),
    mode: str | None = None,
    since: float | None = Query(
        None,
        description="unix time, inclusive; beyond the calendar it is clamped",
        allow_inf_nan=False,
    ),
    until: float | None = Query(
        None,
        description="unix time, exclusive; beyond the calendar it is clamped",
        allow_inf_nan=False,
    ),
    limit: int = Query(50, ge=1, le=MAX_LEDGER_PAGE),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> dict:
    if not caller.is_admin:
        caller.check_user(user if user is not None else caller.user_id, param="user")
        user = caller.user_id
    try:
        rows, total = svc.store.ledger.query(
            user_id=user, mode=mode, since=since, until=until, limit=limit, offset=offset
        )
    except InvalidQuery as exc:
        raise BadQuery(str(exc)) from exc
    return {"object": "list", "total": total, "data": [r.model_dump(mode="json") for r in rows]}
