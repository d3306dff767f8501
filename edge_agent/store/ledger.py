"""The outbound ledger: every byte that leaves the device, written before it leaves.

Every write also extends the hash chain (``edge_agent.store.chain``) in the same
transaction, so a row and its link exist together or not at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select

from edge_agent.store import chain
from edge_agent.store.database import Database
from edge_agent.store.errors import InvalidQuery, LedgerEntryFinished, LedgerEntryNotFound
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
INTERRUPTED = "interrupted"
INTERRUPTED_ERROR = (
    "the edge stopped before this call finished; whether the bytes reached the cloud is unknown"
)
SESSIONS_ENDPOINT = "/v1/sessions"


@dataclass(frozen=True)
class LedgerTotal:
    """Calls and bytes of one mode on one (UTC) day."""

    day: date
    mode: str
    calls: int
    bytes_up: int
    bytes_down: int


@dataclass(frozen=True)
class OpenCloudSession:
    """A cloud session the ledger saw opened and never saw closed."""

    session_id: str
    user_id: str | None
    mode: str
    opened_entry: int


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
                salt=chain.new_salt(),
            )
            session.add(entry)
            session.flush()
            chain.record_sent(session, entry)
            return entry.id

    def finish(
        self,
        entry_id: int,
        status: str,
        http_status: int | None = None,
        bytes_down: int | None = None,
        duration_ms: float | None = None,
        error: str | None = None,
        cloud_session: str | None = None,
    ) -> None:
        """Record how the call ended: status "ok" or "error", once.

        ``cloud_session`` names the session a ``POST /v1/sessions`` opened.
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, not {status!r}")
        with self._db.writing() as session:
            entry = session.get(LedgerEntry, entry_id)
            if entry is None:
                raise LedgerEntryNotFound(entry_id)
            if entry.status != "sending":
                raise LedgerEntryFinished(entry_id, entry.status)
            entry.status = status
            entry.http_status = http_status
            entry.bytes_down = bytes_down
            entry.duration_ms = duration_ms
            entry.error = error
            entry.cloud_session = cloud_session
            chain.record_outcome(session, entry)

    def mark_interrupted(self) -> list[int]:
        """Rows left 'sending' by an edge that stopped become 'interrupted'; their ids.

        Call it only when the edge starts, before it sends anything: a row another live
        process is still sending would be marked too.
        """
        with self._db.writing() as session:
            stuck = session.scalars(
                select(LedgerEntry).where(LedgerEntry.status == "sending").order_by(LedgerEntry.id)
            ).all()
            for entry in stuck:
                entry.status = INTERRUPTED
                entry.error = INTERRUPTED_ERROR
                chain.record_outcome(session, entry)
            return [entry.id for entry in stuck]

    def open_cloud_sessions(self) -> list[OpenCloudSession]:
        """Sessions opened with no close the cloud answered (204, or 404: already gone).

        At start these are the sessions a crashed or failed request left open.
        """
        opened = (
            select(LedgerEntry.id, LedgerEntry.cloud_session, LedgerEntry.user_id, LedgerEntry.mode)
            .where(
                LedgerEntry.cloud_session.is_not(None), LedgerEntry.endpoint == SESSIONS_ENDPOINT
            )
            .order_by(LedgerEntry.id)
        )
        closes = select(LedgerEntry.endpoint).where(
            LedgerEntry.method == "DELETE",
            LedgerEntry.endpoint.startswith(SESSIONS_ENDPOINT + "/"),
            (LedgerEntry.status == "ok") | (LedgerEntry.http_status == 404),
        )
        with self._db.reading() as session:
            closed = {endpoint.rsplit("/", 1)[-1] for endpoint in session.scalars(closes)}
            return [
                OpenCloudSession(session_id, user_id, mode, entry_id)
                for entry_id, session_id, user_id, mode in session.execute(opened)
                if session_id not in closed
            ]

    def totals(self, user_id: str | None = None) -> list[LedgerTotal]:
        """Calls and bytes per UTC day and mode (of one user, or of all), oldest first."""
        day = func.date(LedgerEntry.created_at)
        query = (
            select(
                day,
                LedgerEntry.mode,
                func.count(),
                func.sum(LedgerEntry.bytes_up),
                func.sum(func.coalesce(LedgerEntry.bytes_down, 0)),
            )
            .group_by(day, LedgerEntry.mode)
            .order_by(day, LedgerEntry.mode)
        )
        if user_id is not None:
            query = query.where(LedgerEntry.user_id == user_id)
        with self._db.reading() as session:
            return [
                LedgerTotal(_as_date(d), mode, calls, up or 0, down or 0)
                for d, mode, calls, up, down in session.execute(query)
            ]

    def head(self) -> tuple[int, str]:
        """The chain's newest link: its number and hash (0 and the genesis hash if empty)."""
        with self._db.reading() as session:
            last = chain.head(session)
            return (last.seq, last.hash) if last else (0, chain.GENESIS)

    def verify(self, expected_head: str | None = None) -> chain.ChainReport:
        """Check the hash chain against every row; see ``chain.verify_chain``."""
        return chain.verify_chain(self._db, expected_head)

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


def _as_date(value: date | str) -> date:
    # SQLite's date() gives text; other backends give a date.
    return value if isinstance(value, date) else date.fromisoformat(value)
