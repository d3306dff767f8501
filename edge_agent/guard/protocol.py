"""What the request path needs of the outbound guard (``PrivacyGuard`` fits).

Like ``outbound.Ledger``: the gateway, sketch mode and logits mode depend on this seam,
not on Presidio, so a test can hand in another guard that says what it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from edge_agent.guard.matcher import TermMatcher
from edge_agent.guard.placeholders import Placeholders
from edge_agent.guard.result import GuardResult, Policy
from edge_agent.guard.terms import Term
from edge_agent.store.context import UserContext


class Guard(Protocol):
    def inspect(
        self,
        text: str,
        ctx: UserContext | None = None,
        policy: Policy | str = "redact",
        *,
        extra_terms: Sequence[Term] = (),
        placeholders: Placeholders | None = None,
    ) -> GuardResult:
        """What of `text` may leave under `policy` (redacted, blocked or unchanged);
        `extra_terms` join the profile terms, `placeholders` number the redactions."""
        ...

    def matcher_for(self, ctx: UserContext, extra_terms: Sequence[Term] = ()) -> TermMatcher:
        """The user's profile terms and `extra_terms` (prefix redaction in logits mode)."""
        ...

    def conversation_terms(self, texts: Iterable[str]) -> list[Term]:
        """The deny-list terms of a conversation's private texts."""
        ...
