"""The outbound ledger: every byte that leaves the device, written before it leaves."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from edge_agent.store.database import Database
from edge_agent.store.errors import InvalidQuery, LedgerEntryNotFound
from edge_agent.store.models import LedgerEntry, utc_now
from edge_agent.store.schemas import LedgerEntryOut

MAX_PAGE = 1_000
# SQLite's integers are 64-bit; an offset past this could not be bound, and no ledger is
# that long anyway.
MAX_OFFSET = 2**62
# Unix seconds that a datetime can hold; times beyond are clamped to the ends, so a
# far-future "since" is simply an empty page.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
FINAL_STATUSES = ("ok", "error")


class LedgerRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def begin(
        self,
        user_id: str | None,
        mode: str,
        endpoint: str,
        method: str,
        payload: bytes,
        guard_policy: str | None = None,
        guard_findings: Any | None = None,
        request_id: str | None = None,
    ) -> int:
        """Record the exact bytes about to be sent (status "sending"); returns the entry id.

        Committed before returning, so the record exists even if the send never returns.
        """
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError("payload must be the exact bytes to send, not a decoded string")
        payload = bytes(payload)
        with self._db.writing() as session:
            entry = LedgerEntry(
                created_at=utc_now(),
                user_id=user_id,
                request_id=request_id,
                mode=mode,
                endpoint=endpoint,
                method=method.upper(),
                payload=payload,
                bytes_up=len(payload),
                status="sending",
                guard_policy=guard_policy,
                guard_findings=guard_findings,
            )
            session.add(entry)
            session.flush()
            return entry.id

    def finish(
        self,
        entry_id: int,
        status: str,
        http_status: int | None = None,
        bytes_down: int | None = None,
        duration_ms: float | None = None,
        error: str | None = None,
    ) -> None:
        """Record how the call ended: status "ok" or "error"."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, not {status!r}")
        values = {
            "status": status,
            "http_status": http_status,
            "bytes_down": bytes_down,
            "duration_ms": duration_ms,
            "error": error,
        }
        with self._db.writing() as session:
            result = session.execute(
                update(LedgerEntry).where(LedgerEntry.id == entry_id).values(**values)
            )
            if not result.rowcount:
                raise LedgerEntryNotFound(entry_id)

    def get(self, entry_id: int) -> LedgerEntryOut:
        with self._db.reading() as session:
            entry = session.get(LedgerEntry, entry_id)
            if entry is None:
                raise LedgerEntryNotFound(entry_id)
            return LedgerEntryOut.model_validate(entry)

    def query(
        self,
        user_id: str | None = None,
        mode: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[LedgerEntryOut], int]:
        """Entries newest first, and how many match in all.

        ``since`` is inclusive, ``until`` exclusive: datetimes (naive ones are taken as
        UTC) or unix seconds (finite; clamped to the years 1 to 9999).
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidQuery(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
        if not 0 <= offset <= MAX_OFFSET:
            raise InvalidQuery(f"offset must be between 0 and {MAX_OFFSET}, not {offset}")
        conditions = []
        if user_id is not None:
            conditions.append(LedgerEntry.user_id == user_id)
        if mode is not None:
            conditions.append(LedgerEntry.mode == mode)
        if since is not None:
            conditions.append(LedgerEntry.created_at >= _as_utc(since, "since"))
        if until is not None:
            conditions.append(LedgerEntry.created_at < _as_utc(until, "until"))
        page = (
            select(LedgerEntry)
            .where(*conditions)
            .order_by(LedgerEntry.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._db.reading() as session:
            total = session.scalar(select(func.count()).select_from(LedgerEntry).where(*conditions))
            rows = [LedgerEntryOut.model_validate(e) for e in session.scalars(page)]
            return rows, total or 0


def _as_utc(moment: datetime | float, name: str) -> datetime:
    if isinstance(moment, datetime):
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not math.isfinite(moment):
        raise InvalidQuery(f"{name} must be a finite number of unix seconds")
    if moment <= EARLIEST.timestamp():
        return EARLIEST
    if moment >= LATEST.timestamp():
        return LATEST
    return datetime.fromtimestamp(moment, UTC)
