"""SQLAlchemy models of the private context store.

The schema is owned by the Alembic migrations in ``migrations/versions``; these classes
must match them (a test compares the two).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns timezone-aware datetimes (SQLite would drop the zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    age: Mapped[str | None] = mapped_column(String(32))
    occupation: Mapped[str | None] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(200))
    personal_traits: Mapped[str | None] = mapped_column(Text)
    writing_style: Mapped[str | None] = mapped_column(Text)
    private_information: Mapped[str | None] = mapped_column(Text)
    smart_device_usage: Mapped[str | None] = mapped_column(Text)
    assistant_usage: Mapped[str | None] = mapped_column(Text)
    # Bumped on every change of profile or history; caches of private prefixes key on it.
    data_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)

    samples: Mapped[list[WritingSample]] = relationship(
        back_populates="user", order_by="WritingSample.position", cascade="all, delete-orphan"
    )
    extra_fields: Mapped[list[ExtraField]] = relationship(
        back_populates="user", order_by="ExtraField.position", cascade="all, delete-orphan"
    )
    tasks: Mapped[list[Task]] = relationship(
        back_populates="user", order_by="Task.id", cascade="all, delete-orphan"
    )


class WritingSample(Base):
    """One piece of the user's writing history (the dataset's ``profile`` list)."""

    __tablename__ = "writing_samples"
    __table_args__ = (UniqueConstraint("user_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)

    user: Mapped[User] = relationship(back_populates="samples")


class ExtraField(Base):
    """A profile field beyond the paper's nine, kept as an ordered key/value row."""

    __tablename__ = "user_extra_fields"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    value: Mapped[str] = mapped_column(Text)

    user: Mapped[User] = relationship(back_populates="extra_fields")


class Task(Base):
    """A writing task of the user: the dataset's conversation (``kind="main"``, with its
    reference answer) or one of its ``additional_tasks`` (``kind="additional"``)."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="main")
    instruction: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    source_tid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)

    user: Mapped[User] = relationship(back_populates="tasks")


class LedgerEntry(Base):
    """One outbound call: the exact bytes sent, and what came of it.

    ``user_id`` is deliberately not a foreign key: the ledger outlives profile deletion
    unless the user asks for it to go too.
    """

    __tablename__ = "ledger_entries"
    # Never reuse ids of deleted entries, so an id names one call forever.
    __table_args__ = (
        Index("ix_ledger_entries_user_id_created_at", "user_id", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, index=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str] = mapped_column(String(500))
    method: Mapped[str] = mapped_column(String(8))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    bytes_up: Mapped[int] = mapped_column(Integer)
    bytes_down: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="sending")
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    guard_policy: Mapped[str | None] = mapped_column(String(16))
    guard_findings: Mapped[Any | None] = mapped_column(JSON)
    # The cloud session a POST /v1/sessions opened, so one a crash left open can be closed.
    cloud_session: Mapped[str | None] = mapped_column(String(128))
    # A per-row secret in every chain digest, deleted with the row (see store/chain.py).
    salt: Mapped[str | None] = mapped_column(String(32))
    # The hash of the newest chain link about this row.
    chain_hash: Mapped[str | None] = mapped_column(String(64))


class LedgerLink(Base):
    """One link of the ledger's hash chain (see ``edge_agent.store.chain``).

    ``entry_id`` is not a foreign key: links outlive the rows a user erases.
    """

    __tablename__ = "ledger_chain"
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(16))
    entry_id: Mapped[int | None] = mapped_column(Integer, index=True)
    digest: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Only an erasure has one: the ids it removed and when, since no row is left to hash.
    detail: Mapped[Any | None] = mapped_column(JSON)


class ApiKey(Base):
    """A local API key: who may call the edge, and as whom.

    Only a hash of the secret is stored; the key itself is shown once, when created.
    A user key belongs to one profile and goes with it (``ON DELETE CASCADE``).
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
