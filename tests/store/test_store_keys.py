"""Local API keys in the store: shown once, hashed at rest, listed, revoked, verified."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import update

from edge_agent.store import KeyNotFound, Store, UserNotFound
from edge_agent.store.keys import LAST_USED_RESOLUTION
from edge_agent.store.models import ApiKey, utc_now
from edge_agent.store.schemas import KeyIn, ProfileIn


@pytest.fixture
def ada(store: Store) -> str:
    return store.profiles.create_user(ProfileIn(id="u_ada", name="Ada Moss")).id


def test_a_new_key_verifies_and_names_its_scope_and_user(store: Store, ada: str) -> None:
    new = store.keys.create(KeyIn(scope="user", user_id=ada, label="notes app"))

    assert new.secret.startswith(f"cgk_{new.key.id.removeprefix('k_')}_")
    key = store.keys.verify(new.secret)
    assert key is not None
    assert (key.id, key.scope, key.user_id, key.label) == (new.key.id, "user", ada, "notes app")
    admin = store.keys.create(KeyIn(scope="admin"))
    assert store.keys.verify(admin.secret).scope == "admin"


def test_the_secret_is_stored_only_as_a_hash(store: Store, ada: str, db_url: str) -> None:
    new = store.keys.create(KeyIn(scope="user", user_id=ada))
    secret_part = new.secret.rsplit("_", 1)[-1]

    with store.db.reading() as session:
        row = session.get(ApiKey, new.key.id)
        assert secret_part not in row.secret_hash and len(row.secret_hash) == 64
    store.close()
    database = Path(db_url.removeprefix("sqlite:///"))
    for path in database.parent.glob("edge.db*"):  # the file and its WAL
        assert secret_part.encode() not in path.read_bytes()
    assert "secret" not in new.key.model_dump()


@pytest.mark.parametrize(
    "token",
    ["", "cgk_", "cgk__x", "Bearer x", "cgk_000000000000_wrong", "k_123_abc", "cgk_" + "a" * 300],
)
def test_wrong_or_malformed_keys_do_not_verify(store: Store, ada: str, token: str) -> None:
    store.keys.create(KeyIn(scope="admin"))
    assert store.keys.verify(token) is None


def test_a_key_with_the_right_id_and_a_wrong_secret_does_not_verify(store: Store) -> None:
    new = store.keys.create(KeyIn(scope="admin"))
    assert store.keys.verify(new.secret[:-2] + "xx") is None


def test_revoked_keys_stop_working_and_stay_listed(store: Store, ada: str) -> None:
    new = store.keys.create(KeyIn(scope="user", user_id=ada))

    revoked = store.keys.revoke(new.key.id)

    assert revoked.revoked_at is not None
    assert store.keys.verify(new.secret) is None
    assert store.keys.revoke(new.key.id).revoked_at == revoked.revoked_at  # idempotent
    assert [k.id for k in store.keys.list()] == [new.key.id]
    assert store.keys.list(include_revoked=False) == []
    assert store.keys.count_active() == 0
    with pytest.raises(KeyNotFound):
        store.keys.revoke("k_nothere")


def test_last_used_is_recorded_at_most_once_a_minute(store: Store) -> None:
    new = store.keys.create(KeyIn(scope="admin"))
    assert new.key.last_used_at is None

    first = store.keys.verify(new.secret).last_used_at
    assert first is not None and store.keys.get(new.key.id).last_used_at == first
    assert store.keys.verify(new.secret).last_used_at == first  # not rewritten at once

    earlier = first - LAST_USED_RESOLUTION - timedelta(seconds=1)
    with store.db.writing() as session:
        session.execute(update(ApiKey).values(last_used_at=earlier))
    later = store.keys.verify(new.secret).last_used_at
    assert later is not None and later > earlier and later <= utc_now()


def test_a_user_key_needs_an_existing_profile_and_an_admin_key_none(store: Store) -> None:
    with pytest.raises(UserNotFound):
        store.keys.create(KeyIn(scope="user", user_id="u_nobody"))
    with pytest.raises(ValidationError, match="needs user_id"):
        KeyIn(scope="user")
    with pytest.raises(ValidationError, match="leave user_id out"):
        KeyIn(scope="admin", user_id="u_ada")
    with pytest.raises(ValidationError, match="single line"):
        KeyIn(scope="admin", label="a\nb")


def test_deleting_a_profile_deletes_its_keys(store: Store, ada: str) -> None:
    new = store.keys.create(KeyIn(scope="user", user_id=ada))
    admin = store.keys.create(KeyIn(scope="admin"))

    deleted = store.profiles.delete_user(ada)

    assert deleted.api_keys == 1
    assert store.keys.verify(new.secret) is None
    assert [k.id for k in store.keys.list()] == [admin.key.id]
