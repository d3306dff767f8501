"""Finds a user's deny-list terms in text. Built once per user and profile version."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from edge_agent.guard.terms import CONVERSATION, Term
from edge_agent.guard.text import content_pairs


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of text to protect. ``origin`` says which profile field (or "presidio"
    recognizer) it came from."""

    start: int
    end: int
    entity_type: str
    source: str
    score: float = 1.0
    origin: str = ""


class TermMatcher:
    def __init__(self, terms: Iterable[Term]) -> None:
        self.terms = list(terms)
        literals = [t for t in self.terms if t.kind == "literal"]
        self._exact_terms = {_squash(t.text): t for t in literals if t.case_sensitive}
        self._folded_terms = {_fold(t.text): t for t in literals if not t.case_sensitive}
        self._exact = _alternation(self._exact_terms, flags=0)
        self._folded = _alternation(self._folded_terms, flags=re.IGNORECASE)
        self._phrases = {t.stems: t for t in self.terms if t.kind == "phrase"}

    def find(self, text: str) -> list[Span]:
        """Every occurrence of a term, as (possibly overlapping) spans."""
        spans: list[Span] = []
        if self._exact is not None:
            for match in self._exact.finditer(text):
                spans.append(self._span(match, self._exact_terms.get(_squash(match.group()))))
        if self._folded is not None:
            for match in self._folded.finditer(text):
                spans.append(self._span(match, self._folded_terms.get(_fold(match.group()))))
        if self._phrases:
            for first, second in content_pairs(text):
                term = self._phrases.get(frozenset((first.stem, second.stem)))
                if term is not None:
                    spans.append(
                        Span(
                            first.start,
                            second.end,
                            term.entity_type,
                            _source(term),
                            1.0,
                            term.origin,
                        )
                    )
        return spans

    @staticmethod
    def _span(match: re.Match[str], term: Term | None) -> Span:
        if term is None:
            return Span(match.start(), match.end(), "PRIVATE", "profile", 1.0, "")
        return Span(match.start(), match.end(), term.entity_type, _source(term), 1.0, term.origin)


def _source(term: Term) -> str:
    """Where a term came from: the conversation of this request, or the user's store."""
    return "conversation" if term.origin == CONVERSATION else "profile"


def _squash(text: str) -> str:
    return " ".join(text.split())


def _fold(text: str) -> str:
    return _squash(text).casefold()


def _alternation(texts: Iterable[str], flags: int) -> re.Pattern[str] | None:
    """One regex for all terms, longest first, whole words only, any whitespace inside."""
    unique = sorted(set(texts), key=len, reverse=True)
    if not unique:
        return None
    parts = [r"\s+".join(re.escape(word) for word in text.split()) for text in unique]
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", flags)
