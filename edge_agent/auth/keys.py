"""Who is calling: the local API key in ``Authorization: Bearer``, as FastAPI dependencies.

- A **user key** acts as one profile: it reads, changes and deletes only that profile and
  its ledger, and chats only as that user.
- An **admin key** manages every profile, import and export, every ledger, and the keys.
- With ``COGENESIS_EDGE_AUTH=off`` (loopback only) every caller is an admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from edge_agent.errors import InvalidKey, MissingKey, PermissionDenied
from edge_agent.store import KeyRepository
from edge_agent.store.schemas import KeyScope

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="LocalApiKey",
    description="A local API key from `cogenesis keys create`, sent as "
    "'Authorization: Bearer cgk_...'.",
)


@dataclass(frozen=True)
class Principal:
    """The caller, as its key says."""

    scope: KeyScope
    user_id: str | None = None
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"

    def check_user(self, user_id: str | None, param: str | None = None) -> None:
        """Refuse a user key that names someone else (before anything is looked up, so
        the answer does not tell whether that user exists)."""
        if not self.is_admin and user_id != self.user_id:
            raise PermissionDenied(
                f"this key acts as user {self.user_id!r} and cannot reach another user",
                param=param,
            )

    def chat_user(self, requested: str | None) -> str | None:
        """The user a chat completion runs as: the key's own, or (admin) the one named."""
        if self.is_admin:
            return requested
        if requested is not None:
            self.check_user(requested, "user")
        return self.user_id


AUTH_OFF = Principal(scope="admin")


def caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    """Dependency of every /v1 route: the caller's key, checked against the store."""
    services = request.app.state.services
    if services.settings.auth == "off":
        return AUTH_OFF
    if credentials is None:
        raise MissingKey(
            "this route needs a local API key: send 'Authorization: Bearer <key>'; "
            "create one with `cogenesis keys create`"
        )
    keys: KeyRepository = services.store.keys
    key = keys.verify(credentials.credentials)
    if key is None:
        raise InvalidKey("the API key is not valid (unknown, malformed or revoked)")
    return Principal(scope=key.scope, user_id=key.user_id, key_id=key.id)


def admin(principal: Principal = Depends(caller)) -> Principal:
    """Dependency of the routes that manage every user and the keys."""
    if not principal.is_admin:
        raise PermissionDenied("this route needs an admin key (`cogenesis keys create --admin`)")
    return principal


Caller = Annotated[Principal, Depends(caller)]
Admin = Annotated[Principal, Depends(admin)]
