"""Users' private profiles: create, import and export (CoGenesis format), read, change, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from edge_agent.dependencies import Services
from edge_agent.errors import BadDataset, UnknownUser
from edge_agent.services import EdgeServices
from edge_agent.store import DatasetFormatError, UserNotFound
from edge_agent.store.cogenesis_format import export_users, import_items
from edge_agent.store.schemas import ProfileIn, ProfileUpdate, UserOut

router = APIRouter()


@router.post("/v1/profiles", status_code=201)
def create_profile(body: ProfileIn, svc: Services) -> dict:
    return svc.store.profiles.create_user(body).model_dump(mode="json")


@router.post("/v1/profiles/import", status_code=201)
def import_profiles(items: list[dict[str, Any]], svc: Services) -> dict:
    """Import users from a body in the CoGenesis dataset format (all or nothing)."""
    try:
        report = import_items(items, svc.store.profiles, source="request body")
    except DatasetFormatError as exc:
        raise BadDataset(f"{exc} (nothing was imported)") from exc
    for user_id in report.user_ids:
        svc.invalidate_prefix(user_id)
    return {"users": [{"id": u.id, "name": u.name} for u in report.users]}


@router.get("/v1/profiles/export")
def export_profiles(svc: Services, user: list[str] | None = Query(None)) -> list[dict]:
    """Users in the CoGenesis dataset format (all users, or the given ones)."""
    try:
        return export_users(svc.store.profiles, user)
    except UserNotFound as exc:
        raise UnknownUser(str(exc), param="user") from exc


@router.get("/v1/profiles")
def list_profiles(svc: Services) -> dict:
    users = svc.store.profiles.list_users()
    return {"object": "list", "data": [u.model_dump(mode="json") for u in users]}


@router.get("/v1/profiles/{user_id}")
def get_profile(user_id: str, svc: Services) -> dict:
    return _user_or_404(svc, user_id).model_dump(mode="json")


@router.patch("/v1/profiles/{user_id}")
def update_profile(user_id: str, body: ProfileUpdate, svc: Services) -> dict:
    _user_or_404(svc, user_id)
    updated = svc.store.profiles.update_user(user_id, body)
    svc.invalidate_prefix(user_id)
    return updated.model_dump(mode="json")


@router.delete("/v1/profiles/{user_id}", status_code=204)
def delete_profile(user_id: str, svc: Services, include_ledger: bool = False) -> Response:
    _user_or_404(svc, user_id)
    svc.store.profiles.delete_user(user_id, include_ledger=include_ledger)
    svc.invalidate_prefix(user_id)
    return Response(status_code=204)


def _user_or_404(svc: EdgeServices, user_id: str) -> UserOut:
    try:
        return svc.store.profiles.get_user(user_id)
    except UserNotFound as exc:
        raise UnknownUser(f"unknown user {user_id!r}") from exc
