"""Sign-in sessions of the privacy page: a random id in an HttpOnly, SameSite=Strict
cookie, and a CSRF token that every form of the session must send back.

Sessions live in memory: a restart signs everyone out, and nothing about them is
written to disk. The key itself is never kept, only who it named.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

COOKIE = "cogenesis_page"
IDLE_TIMEOUT_S = 2 * 3600.0
MAX_SESSIONS = 64

Who = TypeVar("Who")


@dataclass
class PageSession(Generic[Who]):
    id: str
    who: Who
    csrf: str
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)

    def flash(self, kind: str, message: str) -> None:
        self.flashes.append((kind, message))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and secrets.compare_digest(token, self.csrf)


class PageSessions(Generic[Who]):
    """At most ``max_sessions`` at once (the oldest goes first); each ends after
    ``idle_timeout_s`` without a request."""

    def __init__(
        self,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, PageSession[Who]] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, who: Who) -> PageSession[Who]:
        session = PageSession(
            secrets.token_urlsafe(32), who, secrets.token_urlsafe(32), self._clock()
        )
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> PageSession[Who] | None:
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_seen > self.idle_timeout_s:
                del self._sessions[session_id]
                return None
            session.last_seen = now
            self._sessions.move_to_end(session_id)
            return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def end_where(self, matches: Callable[[Who], bool]) -> None:
        """End every session whose signed-in party matches (e.g. a deleted user's)."""
        with self._lock:
            for session_id in [i for i, s in self._sessions.items() if matches(s.who)]:
                del self._sessions[session_id]
