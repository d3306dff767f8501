"""Stateful logits sessions: ids, step semantics, idle expiry and token caps.

A session holds committed tokens and the last scored draft. The engine keeps the KV
cache (live or saved, see the engine); this module keeps the tokens and the top-k rows
of the last scoring, so a step that appends nothing answers its first position from
them instead of recomputing a committed token. Every check runs before anything
changes, so a rejected step (4xx) leaves the session as it was.

Each session belongs to the tenant that opened it: another tenant's step or close gets
404, as for an unknown id, and a tenant may hold at most its own number of sessions.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cloud_service.engines.base import Engine, TopKRow
from cloud_service.errors import (
    SessionNotFound,
    SessionTokenCap,
    TokenOutOfRange,
    TooManySessions,
    TopKTooLarge,
    ValidationFailed,
)
from shared_protocol import PROPOSE_CAPABILITY, limits

# Sessions free up when their holders close them: worth retrying soon.
SESSION_RETRY_AFTER_S = 2.0


@dataclass(frozen=True)
class OpenedSession:
    session_id: str
    prompt_tokens: int
    top_k: int
    next: TopKRow
    draft_positions: list[TopKRow]  # after each drafted token (a reopened session's step)


@dataclass(frozen=True)
class StepResult:
    positions: list[TopKRow]
    session_tokens: int  # committed tokens after the step (the draft is not counted)
    proposed: list[int] | None = None  # the cloud's own draft, when asked to propose


@dataclass(eq=False)
class _Session:
    id: str
    top_k: int
    committed: list[int]
    draft: list[int]
    # rows[i]: top max_top_k after committed + draft[:i], from the last scoring.
    rows: list[TopKRow]
    last_used: float
    owner: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False


class SessionRegistry:
    def __init__(
        self,
        engine: Engine,
        *,
        idle_timeout_s: float = 300.0,
        max_sessions: int = 64,
        max_top_k: int = limits.MAX_TOP_K,
        max_tokens: int = limits.MAX_SESSION_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.idle_timeout_s = idle_timeout_s
        self.max_sessions = max_sessions
        self.max_top_k = max_top_k
        # Committed plus drafted tokens must fit the live context.
        self.max_tokens = min(max_tokens, limits.MAX_SESSION_TOKENS, engine.n_ctx)
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def open_count(self, owner: str) -> int:
        with self._lock:
            return sum(1 for s in self._sessions.values() if s.owner == owner)

    def open(
        self,
        prompt_tokens: Sequence[int],
        top_k: int,
        *,
        draft: Sequence[int] = (),
        owner: str = "",
        owner_limit: int | None = None,
    ) -> OpenedSession:
        """Open on ``prompt_tokens`` (committed) and score ``draft`` after them."""
        tokens, draft = list(prompt_tokens), list(draft)
        self._check_top_k(top_k)
        self._check_ids(tokens, "prompt_token_ids")
        self._check_ids(draft, "draft")
        if not tokens:
            raise ValidationFailed("the prompt is empty")
        if len(tokens) + len(draft) > self.max_tokens:
            raise SessionTokenCap(
                f"the prompt has {len(tokens) + len(draft)} tokens; a session holds at most "
                f"{self.max_tokens}"
            )
        self.sweep()
        if len(self) >= self.max_sessions:
            raise TooManySessions(
                f"{self.max_sessions} sessions are open; close one or retry later",
                retry_after_s=SESSION_RETRY_AFTER_S,
            )
        if owner_limit is not None and self.open_count(owner) >= owner_limit:
            raise TooManySessions(
                f"tenant {owner!r} has {owner_limit} sessions open, its limit; "
                "close one or retry later",
                retry_after_s=SESSION_RETRY_AFTER_S,
            )
        session_id = secrets.token_urlsafe(16)
        try:
            rows = self.engine.score(session_id, tokens + draft, len(draft) + 1, self.max_top_k)
        except BaseException:
            self.engine.release(session_id)
            raise
        session = _Session(session_id, top_k, tokens, draft, rows, self._clock(), owner)
        with self._lock:
            self._sessions[session_id] = session
        heads = [row.head(top_k) for row in rows]
        return OpenedSession(session_id, len(tokens), top_k, heads[0], heads[1:])

    def step(
        self,
        session_id: str,
        *,
        accept: int = 0,
        append: Sequence[int] = (),
        draft: Sequence[int] = (),
        propose: int = 0,
        top_k: int | None = None,
        owner: str = "",
    ) -> StepResult:
        """Keep ``accept`` tokens of the last draft, commit ``append``, then score
        ``draft``, or (``propose`` > 0) let the engine draft up to that many tokens
        itself; its proposal becomes the session's draft, as if the edge had sent it."""
        self._check_propose(propose, draft)
        session = self._get(session_id, owner)
        with session.lock:
            if session.closed:
                raise _not_found()
            k = session.top_k if top_k is None else top_k
            self._check_top_k(k)
            if accept > len(session.draft):
                raise ValidationFailed(
                    f"accept={accept} but the previous draft had {len(session.draft)} tokens"
                )
            append, draft = list(append), list(draft)
            self._check_ids(append, "append")
            self._check_ids(draft, "draft")
            committed = session.committed + session.draft[:accept] + append
            ahead = max(len(draft), propose)
            if len(committed) + ahead > self.max_tokens:
                raise SessionTokenCap(
                    f"the session would hold {len(committed) + ahead} tokens; "
                    f"the cap is {self.max_tokens}: open a new session"
                )
            # Everything is validated; nothing above changed the session.
            if propose:
                draft, rows = self.engine.propose(session.id, committed, propose, self.max_top_k)
                session.committed, session.draft, session.rows = committed, draft, rows
                session.last_used = self._clock()
                return StepResult([row.head(k) for row in rows], len(committed), list(draft))
            tokens = committed + draft
            if append:
                rows = self.engine.score(session.id, tokens, len(draft) + 1, self.max_top_k)
            else:
                # The position after the committed tokens was scored by the last call.
                rows = [session.rows[accept]]
                if draft:
                    rows += self.engine.score(session.id, tokens, len(draft), self.max_top_k)
            session.committed, session.draft, session.rows = committed, draft, rows
            session.last_used = self._clock()
            return StepResult([row.head(k) for row in rows], len(committed))

    def close(self, session_id: str, owner: str = "") -> None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.owner != owner:
                raise _not_found()
            del self._sessions[session_id]
        self._retire(session)

    def sweep(self) -> int:
        """Drop idle sessions; returns how many."""
        now = self._clock()
        with self._lock:
            idle = [s for s in self._sessions.values() if self._expired(s, now)]
            for session in idle:
                del self._sessions[session.id]
        for session in idle:
            self._retire(session)
        return len(idle)

    def _get(self, session_id: str, owner: str) -> _Session:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.owner != owner:
                session = expired = None  # another tenant's: as if unknown
            elif session is not None and self._expired(session, self._clock()):
                del self._sessions[session_id]
                expired = session
                session = None
            else:
                expired = None
        if expired is not None:
            self._retire(expired)
        if session is None:
            raise _not_found()
        session.last_used = self._clock()  # a long step must not expire mid-way
        return session

    def _expired(self, session: _Session, now: float) -> bool:
        # A session mid-step is busy, not idle.
        return now - session.last_used > self.idle_timeout_s and not session.lock.locked()

    def _retire(self, session: _Session) -> None:
        with session.lock:  # wait for a running step to finish
            session.closed = True
            self.engine.release(session.id)

    def _check_propose(self, propose: int, draft: Sequence[int]) -> None:
        if not 0 <= propose <= limits.MAX_DRAFT_TOKENS:
            raise ValidationFailed(f"propose={propose}; it must be in 0..{limits.MAX_DRAFT_TOKENS}")
        if propose and draft:
            raise ValidationFailed("give draft (the edge drafts) or propose (the cloud drafts)")
        if propose and PROPOSE_CAPABILITY not in self.engine.capabilities:
            raise ValidationFailed(f"the {self.engine.name} engine does not propose drafts")

    def _check_top_k(self, k: int) -> None:
        if not 1 <= k <= self.max_top_k:
            raise TopKTooLarge(f"top_k={k}; this server serves 1..{self.max_top_k}")

    def _check_ids(self, tokens: Sequence[int], name: str) -> None:
        bad = [t for t in tokens if not 0 <= t < self.engine.vocab_size]
        if bad:
            raise TokenOutOfRange(
                f"{name} has token id {bad[0]}; the vocabulary has {self.engine.vocab_size} ids"
            )


def _not_found() -> SessionNotFound:
    return SessionNotFound("no such session (unknown, closed or expired); open a new one")
