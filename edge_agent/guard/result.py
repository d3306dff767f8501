"""What the guard decided about one outbound text, and how that is written to the ledger."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from edge_agent.guard.matcher import Span
from edge_agent.guard.placeholders import Placeholders

Policy = Literal["redact", "block", "off"]
POLICIES: tuple[str, ...] = get_args(Policy)
Source = Literal["presidio", "profile", "conversation"]


class UnknownPolicy(ValueError):
    def __init__(self, policy: object) -> None:
        super().__init__(f"unknown guard policy {policy!r}; use one of {', '.join(POLICIES)}")


class PayloadBlocked(RuntimeError):
    """Raised by :meth:`GuardResult.raise_if_blocked`: the text must not leave."""

    def __init__(self, result: GuardResult) -> None:
        kinds = ", ".join(f"{n} {kind}" for kind, n in result.counts().items())
        super().__init__(f"the guard blocked this request: it contains {kinds}")
        self.result = result


def check_policy(policy: str) -> Policy:
    if policy not in POLICIES:
        raise UnknownPolicy(policy)
    return policy  # type: ignore[return-value]


def digest(text: str) -> str:
    """8 hex digits of sha256: tells repeated findings apart without keeping the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class Finding:
    """One protected stretch of the ORIGINAL text (offsets index the text as given)."""

    entity_type: str
    start: int
    end: int
    source: Source
    replaced_with: str | None  # None when nothing was replaced (block policy)
    score: float = 1.0
    digest: str = ""

    @property
    def length(self) -> int:
        return self.end - self.start

    def to_record(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "length": self.length,
            "digest": self.digest,
            "replaced_with": self.replaced_with,
        }


@dataclass(frozen=True)
class GuardResult:
    text: str  # what may be sent: redacted, unchanged, or "" when blocked
    findings: list[Finding]
    policy: Policy
    blocked: bool
    seconds: float

    def counts(self) -> dict[str, int]:
        return dict(Counter(f.entity_type for f in self.findings))

    def raise_if_blocked(self) -> None:
        if self.blocked:
            raise PayloadBlocked(self)

    def to_record(self) -> dict[str, Any]:
        """JSON for the ledger: types, offsets, lengths and digests; never the private text."""
        return {
            "policy": self.policy,
            "blocked": self.blocked,
            "seconds": round(self.seconds, 4),
            "counts": self.counts(),
            "findings": [f.to_record() for f in self.findings],
        }


def placeholder(entity_type: str) -> str:
    return f"<{entity_type}>"


def name_of(span: Span, text: str, placeholders: Placeholders | None) -> str:
    """The placeholder of one span of ``text``."""
    if placeholders is None:
        return placeholder(span.entity_type)
    return placeholders.name(span.entity_type, text[span.start : span.end])


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans become one covering them all. Its type is the longest span's;
    on a tie a profile or conversation term beats Presidio (it knows this user), then
    the higher score."""
    merged: list[Span] = []
    group: list[Span] = []
    end = -1
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if group and span.start >= end:  # no overlap with the group so far: close it
            merged.append(_cover(group))
            group = []
        end = max(end, span.end) if group else span.end
        group.append(span)
    if group:
        merged.append(_cover(group))
    return merged


def _cover(group: list[Span]) -> Span:
    winner = max(group, key=lambda s: (s.end - s.start, s.source != "presidio", s.score))
    start = min(s.start for s in group)
    end = max(s.end for s in group)
    return Span(start, end, winner.entity_type, winner.source, winner.score, winner.origin)


def redact(text: str, spans: list[Span], placeholders: Placeholders | None = None) -> str:
    """``text`` with every (merged, non-overlapping) span replaced by its placeholder:
    numbered by ``placeholders`` when given (``<PERSON_1>``), else typed (``<PERSON>``)."""
    pieces = []
    cursor = 0
    for span in spans:
        pieces += [text[cursor : span.start], name_of(span, text, placeholders)]
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces)
