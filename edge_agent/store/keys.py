"""Local API keys: create (shown once), list, revoke, and verify with last-use tracking.

A key reads ``cgk_<id>_<secret>``. The id is public (it names the key in lists and in
``revoke``); the secret is 256 random bits, stored only as its SHA-256. A fast hash is
enough for a secret that cannot be guessed: there is no password to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update

from edge_agent.store.database import Database
from edge_agent.store.errors import KeyNotFound, UserNotFound
from edge_agent.store.models import ApiKey, User, utc_now
from edge_agent.store.schemas import KeyIn, KeyOut

KEY_PREFIX = "cgk"
# Recording every use would make each request a write; once a minute is enough to say
# "last used" and keeps readers from queueing behind the SQLite write lock.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``secret`` is the whole key, which is never shown again."""

    key: KeyOut
    secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def split_key(token: str) -> tuple[str, str] | None:
    """``cgk_<id>_<secret>`` -> (id, secret), or None if it is not shaped like a key."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret or len(token) > 200:
        return None
    return f"k_{key_id}", secret


class KeyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, request: KeyIn) -> NewKey:
        """A new key. A user key needs the profile to exist: it acts as that user."""
        public = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._db.writing() as session:
            if request.scope == "user":
                assert request.user_id is not None  # KeyIn guarantees it
                if session.get(User, request.user_id) is None:
                    raise UserNotFound(request.user_id)
            row = ApiKey(
                id=f"k_{public}",
                secret_hash=_hash(secret),
                scope=request.scope,
                user_id=request.user_id,
                label=request.label,
                created_at=utc_now(),
            )
            session.add(row)
            session.flush()
            return NewKey(KeyOut.model_validate(row), f"{KEY_PREFIX}_{public}_{secret}")

    def list(self, include_revoked: bool = True) -> list[KeyOut]:
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        with self._db.reading() as session:
            return [KeyOut.model_validate(row) for row in session.scalars(query)]

    def get(self, key_id: str) -> KeyOut:
        with self._db.reading() as session:
            row = session.get(ApiKey, key_id)
            if row is None:
                raise KeyNotFound(key_id)
            return KeyOut.model_validate(row)

    def revoke(self, key_id: str) -> KeyOut:
        """Revoke a key for good (revoking it again changes nothing)."""
        with self._db.writing() as session:
            row = session.get(ApiKey, key_id)
            if row is None:
                raise KeyNotFound(key_id)
            if row.revoked_at is None:
                row.revoked_at = utc_now()
            session.flush()
            return KeyOut.model_validate(row)

    def count_active(self) -> int:
        query = select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
        with self._db.reading() as session:
            return session.scalar(query) or 0

    def verify(self, token: str) -> KeyOut | None:
        """The live key behind ``token``, or None. Records its use (once a minute)."""
        parts = split_key(token)
        if parts is None:
            return None
        key_id, secret = parts
        with self._db.reading() as session:
            row = session.get(ApiKey, key_id)
            if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
                return None
            if row.revoked_at is not None:
                return None
            key = KeyOut.model_validate(row)
        now = utc_now()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            with self._db.writing() as session:
                session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
            key = key.model_copy(update={"last_used_at": now})
        return key
