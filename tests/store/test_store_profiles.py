"""Profiles: create, read, update, delete, and the context the edge builds prompts from."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, text

from edge_agent.store import Store, UserExists, UserNotFound, default_db_url, open_store
from edge_agent.store.models import ExtraField, LedgerEntry, Task, User, WritingSample
from edge_agent.store.schemas import ProfileIn, ProfileUpdate, TaskIn, WritingSampleIn


def ada(**overrides: object) -> ProfileIn:
    fields: dict = {
        "name": "Ada Moss",
        "age": 41,
        "occupation": "Florist",
        "location": "Tacoma, Washington",
        "private_information": "Volunteers at the Harbor animal shelter; Saving for a sailboat",
        "extra": {"Pet": "a cat named Fig"},
        "history": [{"title": "Spring", "text": "Tulips again."}],
    }
    return ProfileIn.model_validate({**fields, **overrides})


def rows(store: Store, model: type, **where: str) -> int:
    query = select(func.count()).select_from(model)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    with store.db.reading() as session:
        return session.scalar(query) or 0


def test_create_and_get_a_profile(store: Store) -> None:
    created = store.profiles.create_user(ada())

    fetched = store.profiles.get_user(created.id)

    assert fetched == created
    assert (fetched.name, fetched.age, fetched.data_version) == ("Ada Moss", "41", 1)
    assert fetched.extra == {"Pet": "a cat named Fig"}
    assert [s.text for s in fetched.history] == ["Tulips again."]
    assert fetched.created_at.tzinfo is not None


def test_an_explicit_id_is_kept_and_a_taken_id_is_refused(store: Store) -> None:
    store.profiles.create_user(ada(id="ada"))

    with pytest.raises(UserExists, match="'ada' already exists"):
        store.profiles.create_user(ada(id="ada", name="Someone Else"))


def test_unknown_users_raise_user_not_found(store: Store) -> None:
    with pytest.raises(UserNotFound, match="no profile with id 'ghost'"):
        store.profiles.get_user("ghost")
    with pytest.raises(UserNotFound):
        store.profiles.load_context("ghost")
    with pytest.raises(UserNotFound):
        store.profiles.delete_user("ghost")


def test_profile_input_is_strict_and_bounded() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ProfileIn.model_validate({"name": "X", "password": "hunter2"})
    with pytest.raises(ValidationError, match="at most 4000 characters"):
        ProfileIn(name="X", private_information="y" * 4001)
    with pytest.raises(ValidationError, match="String should match pattern"):
        ProfileIn(name="X", id="../etc/passwd")
    with pytest.raises(ValidationError, match="regular profile fields"):
        ProfileIn(name="X", extra={"Privacy_info": "sneaky"})


def test_load_context_orders_fields_like_the_paper(store: Store) -> None:
    user = store.profiles.create_user(ada())

    ctx = store.profiles.load_context(user.id)

    assert list(ctx.fields) == ["Age", "Name", "Occupation", "Location", "Privacy_info", "Pet"]
    assert ctx.profile_text().splitlines()[:2] == ["Age: 41", "Name: Ada Moss"]
    assert ctx.items("Privacy_info") == [
        "Volunteers at the Harbor animal shelter",
        "Saving for a sailboat",
    ]
    assert ctx.history == (("Spring", "Tulips again."),)
    assert ctx.data_version == 1


def test_data_version_bumps_on_every_profile_or_history_change(store: Store) -> None:
    user_id = store.profiles.create_user(ada()).id
    versions = [store.profiles.get_user(user_id).data_version]

    store.profiles.update_user(user_id, ProfileUpdate(location="Olympia, Washington"))
    versions.append(store.profiles.get_user(user_id).data_version)
    store.profiles.update_user(user_id, ProfileUpdate(extra={"Pet": "a dog"}))
    versions.append(store.profiles.get_user(user_id).data_version)
    store.profiles.add_history(user_id, [WritingSampleIn(title="Fall", text="Dahlias.")])
    versions.append(store.profiles.get_user(user_id).data_version)
    store.profiles.update_user(user_id, ProfileUpdate(history=[{"text": "Only this."}]))
    versions.append(store.profiles.get_user(user_id).data_version)

    assert versions == [1, 2, 3, 4, 5]
    assert store.profiles.load_context(user_id).history == (("", "Only this."),)


def test_no_op_changes_keep_data_version(store: Store) -> None:
    user_id = store.profiles.create_user(ada()).id

    store.profiles.update_user(user_id, ProfileUpdate(location="Tacoma, Washington"))
    added = store.profiles.add_history(
        user_id, [WritingSampleIn(title="Spring", text="Tulips again.")]
    )
    store.profiles.add_tasks(user_id, [TaskIn(instruction="Write a haiku.")])

    assert added == 0
    assert store.profiles.get_user(user_id).data_version == 1  # tasks are not context


def test_cache_key_changes_when_a_deleted_user_comes_back_different(store: Store) -> None:
    user_id = store.profiles.create_user(ada(id="ada")).id
    before = store.profiles.load_context(user_id)
    store.profiles.delete_user(user_id)
    store.profiles.create_user(ada(id="ada", location="Boise, Idaho"))

    after = store.profiles.load_context(user_id)

    assert after.data_version == before.data_version == 1
    assert after.cache_key != before.cache_key


def test_update_can_clear_a_field_but_not_the_name(store: Store) -> None:
    user_id = store.profiles.create_user(ada()).id

    updated = store.profiles.update_user(user_id, ProfileUpdate(occupation=None))

    assert updated.occupation is None
    assert "Occupation" not in store.profiles.load_context(user_id).fields
    with pytest.raises(ValidationError, match="name cannot be cleared"):
        ProfileUpdate(name=None)


def test_delete_removes_every_row_of_the_user_and_keeps_others(store: Store) -> None:
    user_id = store.profiles.create_user(ada()).id
    other_id = store.profiles.create_user(ada(name="Ben Ortiz")).id
    store.profiles.add_tasks(user_id, [TaskIn(instruction="Write a haiku.")])
    store.ledger.begin(user_id, "sketch", "/v1/sketch", "POST", b"{}")

    deleted = store.profiles.delete_user(user_id)

    assert (deleted.users, deleted.writing_samples, deleted.extra_fields, deleted.tasks) == (
        1,
        1,
        1,
        1,
    )
    for model in (WritingSample, ExtraField, Task):
        assert rows(store, model, user_id=user_id) == 0
    assert rows(store, User, id=user_id) == 0
    assert rows(store, LedgerEntry, user_id=user_id) == 1  # kept unless asked
    assert store.profiles.get_user(other_id).name == "Ben Ortiz"


def test_delete_with_ledger_removes_the_ledger_too(store: Store) -> None:
    user_id = store.profiles.create_user(ada()).id
    store.ledger.begin(user_id, "sketch", "/v1/sketch", "POST", b"{}")
    store.ledger.begin("someone-else", "sketch", "/v1/sketch", "POST", b"{}")

    deleted = store.profiles.delete_user(user_id, include_ledger=True)

    assert deleted.ledger_entries == 1
    assert rows(store, LedgerEntry, user_id=user_id) == 0
    assert rows(store, LedgerEntry) == 1


def test_the_ledger_of_a_deleted_profile_can_still_be_forgotten(store: Store) -> None:
    user_id = store.profiles.create_user(ada()).id
    store.ledger.begin(user_id, "sketch", "/v1/sketch", "POST", b"{}")
    store.profiles.delete_user(user_id)

    deleted = store.profiles.delete_user(user_id, include_ledger=True)

    assert (deleted.users, deleted.ledger_entries) == (0, 1)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(store: Store) -> None:
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_sessions_are_safe_to_share_between_threads(store: Store) -> None:
    user_id = store.profiles.create_user(ada()).id
    errors: list[Exception] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                store.profiles.add_history(user_id, [WritingSampleIn(text=f"t{n}-{i}")])
                store.ledger.begin(user_id, "sketch", "/x", "POST", b"{}")
                store.profiles.load_context(user_id)
        except Exception as error:  # surfaced by the assert below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(store.profiles.get_user(user_id).history) == 41
    assert store.profiles.get_user(user_id).data_version == 41


def test_default_db_url_lives_in_cogenesis_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / "cogenesis"
    monkeypatch.setenv("COGENESIS_HOME", str(home))

    url = default_db_url()

    assert url == f"sqlite:///{home / 'edge.db'}"
    assert home.is_dir() and (home.stat().st_mode & 0o777) == 0o700
    with open_store() as opened:
        assert opened.url == url
    assert (home / "edge.db").is_file()


def test_an_in_memory_store_works_for_quick_experiments() -> None:
    with open_store("sqlite://") as memory:
        user = memory.profiles.create_user(ada())
        assert memory.profiles.load_context(user.id).name == "Ada Moss"
