"""Users' private profiles: create, import and export (CoGenesis format), read, change, delete.

Import, export and creation need an admin key; a user key reads, changes and deletes
only its own profile (and lists only that one).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from edge_agent.auth import Admin, Caller
from edge_agent.dependencies import Services
from edge_agent.errors import BadDataset, Unexportable, UnknownUser, UserConflict, error_responses
from edge_agent.services import EdgeServices
from edge_agent.store import (
    DatasetFormatError,
    UnexportableProfile,
    UserExists,
    UserNotFound,
)
from edge_agent.store.cogenesis_format import export_users, import_items
from edge_agent.store.schemas import ProfileIn, ProfileUpdate, UserOut

READ = error_responses(400, 401, 403)
WRITE = error_responses(400, 401, 403, 413, 415)
router = APIRouter()


@router.post("/v1/profiles", status_code=201, responses={**WRITE, **error_responses(409)})
def create_profile(body: ProfileIn, svc: Services, _: Admin) -> dict:
    try:
        return svc.store.profiles.create_user(body).model_dump(mode="json")
    except UserExists as exc:
        raise UserConflict(str(exc), param="id") from exc


@router.post("/v1/profiles/import", status_code=201, responses=WRITE)
def import_profiles(
    items: list[dict[str, Any]],
    svc: Services,
    _: Admin,
    merge: bool = Query(
        False,
        description="two items about one person that disagree: keep the first item's "
        "fields (and warn) instead of refusing the body",
    ),
) -> dict:
    """Import users from a body in the CoGenesis dataset format (all or nothing)."""
    try:
        report = import_items(items, svc.store.profiles, source="request body", merge=merge)
    except DatasetFormatError as exc:
        raise BadDataset(f"{exc} (nothing was imported)") from exc
    for user_id in report.user_ids:
        svc.invalidate_prefix(user_id)
    return {
        "users": [{"id": u.id, "name": u.name} for u in report.users],
        "warnings": report.warnings,
    }


@router.get("/v1/profiles/export", responses={**READ, **error_responses(404, 409)})
def export_profiles(svc: Services, _: Admin, user: list[str] | None = Query(None)) -> list[dict]:
    """Users in the CoGenesis dataset format (all users, or the given ones)."""
    try:
        return export_users(svc.store.profiles, user)
    except UserNotFound as exc:
        raise UnknownUser(str(exc), param="user") from exc
    except UnexportableProfile as exc:
        raise Unexportable(str(exc), param="user") from exc


@router.get("/v1/profiles", responses=READ)
def list_profiles(svc: Services, caller: Caller) -> dict:
    users = svc.store.profiles.list_users()
    if not caller.is_admin:
        users = [u for u in users if u.id == caller.user_id]
    return {"object": "list", "data": [u.model_dump(mode="json") for u in users]}


@router.get("/v1/profiles/{user_id}", responses={**READ, **error_responses(404)})
def get_profile(user_id: str, svc: Services, caller: Caller) -> dict:
    caller.check_user(user_id)
    return _user_or_404(svc, user_id).model_dump(mode="json")


@router.patch("/v1/profiles/{user_id}", responses={**WRITE, **error_responses(404)})
def update_profile(user_id: str, body: ProfileUpdate, svc: Services, caller: Caller) -> dict:
    caller.check_user(user_id)
    try:
        updated = svc.store.profiles.update_user(user_id, body)
    except UserNotFound as exc:
        raise UnknownUser(f"unknown user {user_id!r}") from exc
    svc.invalidate_prefix(user_id)
    return updated.model_dump(mode="json")


@router.delete(
    "/v1/profiles/{user_id}", status_code=204, responses={**WRITE, **error_responses(404)}
)
def delete_profile(
    user_id: str, svc: Services, caller: Caller, include_ledger: bool = False
) -> Response:
    caller.check_user(user_id)
    _user_or_404(svc, user_id)
    try:
        svc.store.profiles.delete_user(user_id, include_ledger=include_ledger)
    except UserNotFound as exc:  # deleted meanwhile by another request
        raise UnknownUser(f"unknown user {user_id!r}") from exc
    svc.invalidate_prefix(user_id)
    return Response(status_code=204)


def _user_or_404(svc: EdgeServices, user_id: str) -> UserOut:
    try:
        return svc.store.profiles.get_user(user_id)
    except UserNotFound as exc:
        raise UnknownUser(f"unknown user {user_id!r}") from exc
