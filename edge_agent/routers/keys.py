"""The local API keys, over REST (admin keys only): create (the secret shown once), list,
revoke. The same as `cogenesis keys create|list|revoke`."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from edge_agent.auth import Admin
from edge_agent.dependencies import Services
from edge_agent.errors import UnknownKey, UnknownUser, error_responses
from edge_agent.store import KeyNotFound, UserNotFound
from edge_agent.store.schemas import KeyIn, KeyOut

router = APIRouter()


class CreatedKey(BaseModel):
    key: KeyOut
    secret: str = Field(description="the key to send as 'Authorization: Bearer'; shown only now")


class KeyList(BaseModel):
    object: str = "list"
    data: list[KeyOut]


@router.post(
    "/v1/keys",
    status_code=201,
    response_model=CreatedKey,
    responses=error_responses(400, 401, 403, 404, 413, 415),
)
def create_key(body: KeyIn, svc: Services, _: Admin) -> CreatedKey:
    try:
        new = svc.store.keys.create(body)
    except UserNotFound as exc:
        raise UnknownUser(str(exc), param="user_id") from exc
    return CreatedKey(key=new.key, secret=new.secret)


@router.get("/v1/keys", response_model=KeyList, responses=error_responses(400, 401, 403))
def list_keys(svc: Services, _: Admin) -> KeyList:
    return KeyList(data=svc.store.keys.list())


@router.delete(
    "/v1/keys/{key_id}",
    response_model=KeyOut,
    responses=error_responses(400, 401, 403, 404, 413, 415),
)
def revoke_key(key_id: str, svc: Services, _: Admin) -> KeyOut:
    try:
        return svc.store.keys.revoke(key_id)
    except KeyNotFound as exc:
        raise UnknownKey(str(exc), param="key_id") from exc
