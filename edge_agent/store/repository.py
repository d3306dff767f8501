"""Profiles: create, read, update, delete, and the private context the edge works from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from edge_agent.store import chain
from edge_agent.store.context import PROFILE_FIELDS, UserContext
from edge_agent.store.database import Database
from edge_agent.store.errors import UserExists, UserNotFound
from edge_agent.store.identity import derive_user_id
from edge_agent.store.models import (
    ApiKey,
    ExtraField,
    LedgerEntry,
    Task,
    User,
    WritingSample,
    utc_now,
)
from edge_agent.store.schemas import (
    PROFILE_ATTRIBUTES,
    ProfileImport,
    ProfileIn,
    ProfileUpdate,
    TaskIn,
    TaskOut,
    UserOut,
    UserSummary,
    WritingSampleIn,
    WritingSampleOut,
)


@dataclass(frozen=True)
class DeletedRows:
    """How many rows ``delete_user`` removed, per table."""

    users: int = 0
    writing_samples: int = 0
    extra_fields: int = 0
    tasks: int = 0
    api_keys: int = 0
    ledger_entries: int = 0

    @property
    def total(self) -> int:
        return (
            self.users
            + self.writing_samples
            + self.extra_fields
            + self.tasks
            + self.api_keys
            + self.ledger_entries
        )


@dataclass(frozen=True)
class ImportCounts:
    users_created: int = 0
    users_updated: int = 0
    users_unchanged: int = 0
    samples_added: int = 0
    tasks_added: int = 0


def user_id_for(profile: ProfileIn) -> str:
    """The id a profile is stored under: its own, or one derived from who the person is."""
    return profile.id or derive_user_id(
        profile.name, profile.age, profile.occupation, profile.location
    )


class ProfileRepository:
    """Profiles, writing history and tasks. Every method is one short transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- create / read -------------------------------------------------------------------

    def create_user(self, profile: ProfileIn) -> UserOut:
        """Store a new profile; raises :class:`UserExists` if its id is taken."""
        user_id = user_id_for(profile)
        try:
            with self._db.writing() as session:
                if session.get(User, user_id) is not None:
                    raise UserExists(user_id)
                row = _new_user(user_id, profile)
                session.add(row)
                session.flush()
                return _user_out(row, task_count=0)
        except IntegrityError as error:  # another writer won the race for this id
            raise UserExists(user_id) from error

    def get_user(self, user_id: str) -> UserOut:
        with self._db.reading() as session:
            row = _load_user(session, user_id)
            return _user_out(row, task_count=_task_count(session, user_id))

    def list_users(self) -> list[UserSummary]:
        samples = (
            select(WritingSample.user_id, func.count().label("n"))
            .group_by(WritingSample.user_id)
            .subquery()
        )
        tasks = select(Task.user_id, func.count().label("n")).group_by(Task.user_id).subquery()
        query = (
            select(User, func.coalesce(samples.c.n, 0), func.coalesce(tasks.c.n, 0))
            .outerjoin(samples, samples.c.user_id == User.id)
            .outerjoin(tasks, tasks.c.user_id == User.id)
            .order_by(User.name, User.id)
        )
        with self._db.reading() as session:
            return [
                UserSummary(
                    id=row.id,
                    name=row.name,
                    data_version=row.data_version,
                    history_count=history_count,
                    task_count=task_count,
                    updated_at=row.updated_at,
                )
                for row, history_count, task_count in session.execute(query)
            ]

    def list_tasks(self, user_id: str) -> list[TaskOut]:
        with self._db.reading() as session:
            row = _load_user(session, user_id)
            return [TaskOut.model_validate(task) for task in row.tasks]

    def load_context(self, user_id: str) -> UserContext:
        """The private context of one user, as prompts and the guard read it."""
        with self._db.reading() as session:
            row = _load_user(session, user_id)
            fields = {
                label: value
                for attr, label in PROFILE_FIELDS
                if (value := getattr(row, attr)) not in (None, "")
            }
            fields.update((extra.key, extra.value) for extra in row.extra_fields)
            return UserContext(
                user_id=row.id,
                name=row.name,
                fields=fields,
                history=tuple((sample.title, sample.text) for sample in row.samples),
                data_version=row.data_version,
            )

    # -- change --------------------------------------------------------------------------

    def update_user(self, user_id: str, changes: ProfileUpdate) -> UserOut:
        """Apply the fields set in ``changes``; bumps ``data_version`` if anything changed."""
        with self._db.writing() as session:
            row = _load_user(session, user_id)
            given = changes.model_fields_set
            values = changes.model_dump(include=given & {"name", *PROFILE_ATTRIBUTES})
            changed = _assign(row, values)
            if "extra" in given:
                changed |= _replace_extra(row, changes.extra)
            if "history" in given and changes.history is not None:
                changed |= _replace_history(session, row, changes.history)
            if changed:
                _bump(row)
            session.flush()
            return _user_out(row, task_count=_task_count(session, user_id))

    def add_history(self, user_id: str, samples: Sequence[WritingSampleIn]) -> int:
        """Append writing samples not stored yet; returns how many were added."""
        with self._db.writing() as session:
            row = _load_user(session, user_id)
            added = _append_new_samples(row, samples)
            if added:
                _bump(row)
            return added

    def add_tasks(self, user_id: str, tasks: Sequence[TaskIn]) -> int:
        """Append tasks not stored yet. Tasks are not context: ``data_version`` stays."""
        with self._db.writing() as session:
            return _append_new_tasks(_load_user(session, user_id), tasks)

    def delete_user(self, user_id: str, include_ledger: bool = False) -> DeletedRows:
        """Remove every row of this user (their API keys too), and their ledger if asked.

        Raises :class:`UserNotFound` only if there was nothing at all to delete, so
        "forget my ledger too" still works after the profile is gone.
        """
        with self._db.writing() as session:

            def remove(model: type, column: Any) -> int:
                return session.execute(delete(model).where(column == user_id)).rowcount or 0

            erased = _erase_ledger(session, user_id) if include_ledger else 0
            deleted = DeletedRows(
                writing_samples=remove(WritingSample, WritingSample.user_id),
                extra_fields=remove(ExtraField, ExtraField.user_id),
                tasks=remove(Task, Task.user_id),
                api_keys=remove(ApiKey, ApiKey.user_id),
                users=remove(User, User.id),
                ledger_entries=erased,
            )
            if deleted.total == 0:
                raise UserNotFound(user_id)
            return deleted

    def import_profiles(self, people: Iterable[ProfileImport]) -> ImportCounts:
        """Create or merge many people in ONE transaction: all of them, or none.

        For a person already stored, fields the file carries overwrite the stored ones,
        and writing samples and tasks not stored yet are appended. Importing the same
        data twice changes nothing, not even ``data_version``.
        """
        created = updated = unchanged = samples_added = tasks_added = 0
        with self._db.writing() as session:
            for person in people:
                profile = person.profile
                user_id = user_id_for(profile)
                row = session.get(User, user_id)
                if row is None:
                    row = _new_user(user_id, profile)
                    session.add(row)
                    created += 1
                    samples_added += len(row.samples)
                else:
                    present = profile.model_dump(include={"name", *PROFILE_ATTRIBUTES})
                    changed = _assign(row, {k: v for k, v in present.items() if v is not None})
                    changed |= _merge_extra(row, profile.extra)
                    added = _append_new_samples(row, profile.history)
                    samples_added += added
                    if changed or added:
                        _bump(row)
                        updated += 1
                    else:
                        unchanged += 1
                tasks_added += _append_new_tasks(row, person.tasks)
                session.flush()  # the next person may be the same one
        return ImportCounts(created, updated, unchanged, samples_added, tasks_added)


# -- row helpers (all run inside a session) ------------------------------------------------


def _erase_ledger(session: Session, user_id: str) -> int:
    """Delete the user's ledger rows; the chain records which ids went, nothing else."""
    ids = list(session.scalars(select(LedgerEntry.id).where(LedgerEntry.user_id == user_id)))
    if ids:
        session.execute(delete(LedgerEntry).where(LedgerEntry.user_id == user_id))
        chain.record_erasure(session, ids)
    return len(ids)


def _load_user(session: Session, user_id: str) -> User:
    row = session.get(
        User,
        user_id,
        options=[selectinload(User.samples), selectinload(User.extra_fields)],
    )
    if row is None:
        raise UserNotFound(user_id)
    return row


def _task_count(session: Session, user_id: str) -> int:
    return session.scalar(select(func.count()).where(Task.user_id == user_id)) or 0


def _new_user(user_id: str, profile: ProfileIn) -> User:
    now = utc_now()
    row = User(id=user_id, data_version=1, created_at=now, updated_at=now)
    _assign(row, profile.model_dump(include={"name", *PROFILE_ATTRIBUTES}))
    _replace_extra(row, profile.extra)
    _append_new_samples(row, profile.history)
    return row


def _assign(row: User, values: dict[str, str | None]) -> bool:
    changed = False
    for attr, value in values.items():
        if getattr(row, attr) != value:
            setattr(row, attr, value)
            changed = True
    return changed


def _replace_extra(row: User, extra: dict[str, str]) -> bool:
    if [(f.key, f.value) for f in row.extra_fields] == list(extra.items()):
        return False
    row.extra_fields.clear()
    row.extra_fields.extend(
        ExtraField(key=key, value=value, position=i) for i, (key, value) in enumerate(extra.items())
    )
    return True


def _merge_extra(row: User, extra: dict[str, str]) -> bool:
    stored = {f.key: f for f in row.extra_fields}
    changed = False
    for key, value in extra.items():
        if key not in stored:
            row.extra_fields.append(ExtraField(key=key, value=value, position=len(stored)))
            stored[key] = row.extra_fields[-1]
            changed = True
        elif stored[key].value != value:
            stored[key].value = value
            changed = True
    return changed


def _append_new_samples(row: User, samples: Iterable[WritingSampleIn]) -> int:
    seen = {(s.title, s.text) for s in row.samples}
    next_position = max((s.position for s in row.samples), default=-1) + 1
    added = 0
    for sample in samples:
        if (sample.title, sample.text) in seen:
            continue
        seen.add((sample.title, sample.text))
        row.samples.append(
            WritingSample(position=next_position, title=sample.title, text=sample.text)
        )
        next_position += 1
        added += 1
    return added


def _replace_history(session: Session, row: User, samples: Sequence[WritingSampleIn]) -> bool:
    if [(s.title, s.text) for s in row.samples] == [(s.title, s.text) for s in samples]:
        return False
    row.samples.clear()
    session.flush()  # free the (user_id, position) pairs before reusing them
    _append_new_samples(row, samples)
    return True


def _append_new_tasks(row: User, tasks: Iterable[TaskIn]) -> int:
    seen = {(t.kind, t.source_tid, t.instruction) for t in row.tasks}
    added = 0
    for task in tasks:
        key = (task.kind, task.source_tid, task.instruction)
        if key in seen:
            continue
        seen.add(key)
        row.tasks.append(Task(**task.model_dump(), created_at=utc_now()))
        added += 1
    return added


def _bump(row: User) -> None:
    row.data_version = (row.data_version or 0) + 1
    row.updated_at = utc_now()


def _user_out(row: User, task_count: int) -> UserOut:
    return UserOut(
        id=row.id,
        **{attr: getattr(row, attr) for attr in ("name", *PROFILE_ATTRIBUTES)},
        extra={f.key: f.value for f in row.extra_fields},
        history=[WritingSampleOut.model_validate(s) for s in row.samples],
        task_count=task_count,
        data_version=row.data_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
