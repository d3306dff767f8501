"""The guard as one request uses it: the user's terms plus the conversation's, and one
placeholder numbering for everything of the request that leaves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from edge_agent.guard.matcher import TermMatcher
from edge_agent.guard.placeholders import Placeholders
from edge_agent.guard.protocol import Guard
from edge_agent.guard.result import GuardResult, Policy
from edge_agent.guard.terms import Term
from edge_agent.store.context import UserContext


@dataclass
class RequestGuard:
    guard: Guard
    ctx: UserContext
    policy: Policy
    extra_terms: tuple[Term, ...] = ()
    placeholders: Placeholders = field(default_factory=Placeholders)

    @classmethod
    def of(
        cls, guard: Guard, ctx: UserContext, policy: Policy, private_texts: Iterable[str]
    ) -> RequestGuard:
        """For a request whose conversation holds ``private_texts`` (everything that must
        not leave: system messages, earlier turns, the task beyond its title)."""
        texts = [text for text in private_texts if text.strip()]
        terms = guard.conversation_terms(texts) if policy != "off" and texts else []
        return cls(guard, ctx, policy, tuple(terms))

    def inspect(self, text: str) -> GuardResult:
        return self.guard.inspect(
            text,
            self.ctx,
            self.policy,
            extra_terms=self.extra_terms,
            placeholders=self.placeholders,
        )

    def prefix_matcher(self) -> TermMatcher | None:
        """The terms the logits prefix is redacted with; none under policy "off".

        Presidio is too slow to run at every generated token (it guards the title); the
        small model's private details come from the profile and the conversation.
        """
        if self.policy == "off":
            return None
        return self.guard.matcher_for(self.ctx, self.extra_terms)
