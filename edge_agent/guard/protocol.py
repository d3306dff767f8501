"""What the request path needs of the outbound guard (``PrivacyGuard`` fits).

Like ``outbound.Ledger``: the gateway, sketch mode and logits mode depend on this seam,
not on Presidio, so a test can hand in another guard that says what it is.
"""

from __future__ import annotations

from typing import Protocol

from edge_agent.guard.matcher import TermMatcher
from edge_agent.guard.result import GuardResult, Policy
from edge_agent.store.context import UserContext


class Guard(Protocol):
    def inspect(
        self, text: str, ctx: UserContext | None = None, policy: Policy | str = "redact"
    ) -> GuardResult:
        """What of `text` may leave under `policy` (redacted, blocked or unchanged)."""
        ...

    def matcher_for(self, ctx: UserContext) -> TermMatcher:
        """The user's profile terms (prefix redaction in logits mode)."""
        ...
