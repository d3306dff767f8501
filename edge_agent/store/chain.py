"""The ledger's hash chain: tamper evidence for everything the ledger records.

A ledger row changes after it is written (it is recorded before the bytes leave and
finished when the answer comes back), so the chain links EVENTS, not rows:

- ``sent``: a row was recorded (its payload, destination, guard decision);
- ``outcome``: a row reached its final status (ok, error, interrupted);
- ``erased``: a user's rows were deleted on request; the link names the row ids only.

Each link holds the digest of its event's canonical content and
``hash = sha256(previous hash + digest)``. A row carries the hash of its latest link.
``verify_chain`` recomputes every digest from the rows and every hash from the links,
so an edited byte, a deleted or inserted row, or a reordered link shows up, named.
Cutting the newest links off the end leaves a shorter chain that is still consistent;
that is what ``cogenesis ledger head`` is for: a head kept elsewhere must still be in the
chain.

One chain for the whole device, not one per user: the ledger answers "what left this
device", a single head covers every user, a whole user's chain cannot vanish without a
trace, and rows of different users cannot be reordered against each other. Deleting a
user's data stays possible because the ``erased`` event replaces their rows; the digests
that remain are salted with a per-row secret that is deleted with the row, so they say
nothing about the erased content.

Appends read the head and insert in the caller's write transaction; the store
serializes writers (SQLite ``BEGIN IMMEDIATE``), so two appends cannot fork the chain.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_agent.store.database import Database
from edge_agent.store.models import LedgerEntry, LedgerLink

GENESIS = "0" * 64
PAGE = 500  # rows read at a time while verifying
SENT, OUTCOME, ERASED = "sent", "outcome", "erased"
# The row fields each event covers. ``salt`` is in both, so nothing about an erased row
# can be confirmed by guessing its content and hashing the guess.
SENT_FIELDS = (
    "id",
    "created_at",
    "user_id",
    "request_id",
    "mode",
    "endpoint",
    "method",
    "bytes_up",
    "guard_policy",
    "guard_findings",
    "salt",
)
OUTCOME_FIELDS = (
    "id",
    "status",
    "http_status",
    "bytes_down",
    "duration_ms",
    "error",
    "cloud_session",
    "salt",
)


def new_salt() -> str:
    return secrets.token_hex(16)


def canonical(content: Mapping[str, Any]) -> bytes:
    """One byte string per content: sorted keys, no spaces, ASCII, no NaN."""
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _iso(moment: datetime) -> str:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat()


def sent_content(row: Any) -> dict[str, Any]:
    """What a ``sent`` link covers: the row as recorded before sending, and its payload."""
    content = {name: getattr(row, name) for name in SENT_FIELDS}
    content["created_at"] = _iso(content["created_at"])
    content["payload_sha256"] = hashlib.sha256(bytes(row.payload)).hexdigest()
    return {"event": SENT, **content}


def outcome_content(row: Any) -> dict[str, Any]:
    return {"event": OUTCOME, **{name: getattr(row, name) for name in OUTCOME_FIELDS}}


def erased_content(detail: Mapping[str, Any]) -> dict[str, Any]:
    return {"event": ERASED, **detail}


def digest(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(content)).hexdigest()


def link_hash(previous: str, content_digest: str) -> str:
    return hashlib.sha256(f"{previous}{content_digest}".encode("ascii")).hexdigest()


def head(session: Session) -> LedgerLink | None:
    return session.scalars(select(LedgerLink).order_by(LedgerLink.seq.desc()).limit(1)).first()


def append(
    session: Session,
    event: str,
    content: Mapping[str, Any],
    *,
    entry_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> str:
    """Add one link after the current head (inside the caller's write transaction)."""
    last = head(session)
    content_digest = digest(content)
    link = LedgerLink(
        event=event,
        entry_id=entry_id,
        digest=content_digest,
        hash=link_hash(last.hash if last else GENESIS, content_digest),
        detail=dict(detail) if detail is not None else None,
    )
    session.add(link)
    session.flush()
    return link.hash


def record_sent(session: Session, row: LedgerEntry) -> None:
    row.chain_hash = append(session, SENT, sent_content(row), entry_id=row.id)


def record_outcome(session: Session, row: LedgerEntry) -> None:
    row.chain_hash = append(session, OUTCOME, outcome_content(row), entry_id=row.id)


def record_erasure(session: Session, entry_ids: Iterable[int]) -> None:
    """The rows were deleted on the user's request: their ids, nothing of their content."""
    ids = sorted(entry_ids)
    if ids:
        detail = {"entries": ids, "at": _iso(datetime.now(UTC))}
        append(session, ERASED, erased_content(detail), detail=detail)


# -- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainProblem:
    entry_id: int | None  # the ledger row it concerns (None: an erasure link)
    seq: int | None  # the chain link it concerns
    reason: str

    def describe(self) -> str:
        where = f"entry #{self.entry_id}" if self.entry_id is not None else f"link {self.seq}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    links: int
    entries: int
    erased: int
    head: str
    problems: list[ChainProblem] = field(default_factory=list)
    expected_head_found: bool | None = None  # None: no head was given to look for

    @property
    def ok(self) -> bool:
        return not self.problems and self.expected_head_found is not False

    @property
    def first(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None


@dataclass
class _Seen:
    """What the links say about one row."""

    sent: list[tuple[int, str]] = field(default_factory=list)  # (seq, digest)
    outcome: tuple[int, str] | None = None  # the latest
    last_hash: str = ""


def verify_chain(db: Database, expected_head: str | None = None) -> ChainReport:
    """Recompute the chain and every row's digests; problems come ordered by row id."""
    problems: list[ChainProblem] = []
    seen: dict[int, _Seen] = {}
    erased: set[int] = set()
    previous, links, found_head = GENESIS, 0, None
    with db.reading() as session:
        links_in_order = select(LedgerLink).order_by(LedgerLink.seq)
        for link in session.scalars(links_in_order.execution_options(yield_per=PAGE)):
            links += 1
            if link.hash != link_hash(previous, link.digest):
                problems.append(
                    ChainProblem(
                        link.entry_id,
                        link.seq,
                        f"chain broken at link {link.seq}: a link before it was removed, "
                        "inserted or reordered, or this one was edited",
                    )
                )
            previous = link.hash
            if expected_head is not None and link.hash == expected_head:
                found_head = True
            if link.event == ERASED:
                _check_erasure(link, problems)
                erased.update(_erased_ids(link))
            elif link.entry_id is None or link.event not in (SENT, OUTCOME):
                problems.append(ChainProblem(link.entry_id, link.seq, "a link of unknown kind"))
            else:
                state = seen.setdefault(link.entry_id, _Seen())
                if link.event == SENT:
                    state.sent.append((link.seq, link.digest))
                else:
                    state.outcome = (link.seq, link.digest)
                state.last_hash = link.hash
        entries = 0
        rows_in_order = select(LedgerEntry).order_by(LedgerEntry.id)
        for row in session.scalars(rows_in_order.execution_options(yield_per=PAGE)):
            entries += 1
            problems.extend(_check_row(row, seen.pop(row.id, None), row.id in erased))
        for entry_id, state in seen.items():
            if entry_id not in erased and state.sent:
                problems.append(
                    ChainProblem(
                        entry_id,
                        state.sent[0][0],
                        "the row was deleted outside the edge (no erasure names it)",
                    )
                )
    problems.sort(key=_row_then_link)
    if expected_head is not None and found_head is None:
        found_head = False
    return ChainReport(links, entries, len(erased), previous, problems, found_head)


def _row_then_link(problem: ChainProblem) -> tuple[float, float]:
    """Problems of the first bad row first; erasure links (no row) last."""
    return (
        float("inf") if problem.entry_id is None else problem.entry_id,
        float("inf") if problem.seq is None else problem.seq,
    )


def _check_row(row: LedgerEntry, state: _Seen | None, erased: bool) -> list[ChainProblem]:
    if state is None or not state.sent:
        return [ChainProblem(row.id, None, "the row is not in the chain (added outside the edge)")]
    found: list[ChainProblem] = []
    seq, sent_digest = state.sent[0]
    if len(state.sent) > 1:
        found.append(ChainProblem(row.id, state.sent[1][0], "the chain records it sent twice"))
    if erased:
        found.append(ChainProblem(row.id, seq, "an erasure names this row, yet it is still here"))
    if digest(sent_content(row)) != sent_digest:
        found.append(
            ChainProblem(
                row.id, seq, "its payload or what was recorded with it changed after it was sent"
            )
        )
    if row.status == "sending":
        if state.outcome is not None:
            found.append(
                ChainProblem(row.id, state.outcome[0], "it says 'sending' but the chain saw it end")
            )
    elif state.outcome is None:
        found.append(
            ChainProblem(row.id, None, f"it says {row.status!r} but the chain never saw it end")
        )
    elif digest(outcome_content(row)) != state.outcome[1]:
        found.append(
            ChainProblem(row.id, state.outcome[0], "its status or outcome changed after it ended")
        )
    if row.chain_hash != state.last_hash:
        found.append(ChainProblem(row.id, None, "its hash is not its latest link's hash"))
    return found


def _erased_ids(link: LedgerLink) -> list[int]:
    entries = (link.detail or {}).get("entries", [])
    return [i for i in entries if isinstance(i, int)] if isinstance(entries, list) else []


def _check_erasure(link: LedgerLink, problems: list[ChainProblem]) -> None:
    if link.detail is None or digest(erased_content(link.detail)) != link.digest:
        problems.append(ChainProblem(None, link.seq, "the erasure record was edited"))
