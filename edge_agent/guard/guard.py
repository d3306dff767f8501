"""``PrivacyGuard``: inspects every text before it may leave the device."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.guard.conversation import conversation_terms
from edge_agent.guard.engine import (
    DEFAULT_ENTITIES,
    DEFAULT_SCORE_THRESHOLD,
    shared_analyzer,
    spacy_pipeline,
)
from edge_agent.guard.matcher import Span, TermMatcher
from edge_agent.guard.placeholders import Placeholders
from edge_agent.guard.result import (
    Finding,
    GuardResult,
    Policy,
    check_policy,
    digest,
    merge_spans,
    name_of,
    redact,
)
from edge_agent.guard.terms import PUBLIC_NAMES, Term, profile_terms
from edge_agent.guard.text import TASK_WORDS, WORD_RE
from edge_agent.store.context import UserContext

SPACY_RECOGNIZER = "SpacyRecognizer"


@dataclass(frozen=True)
class PayloadHit:
    """A profile term found in a stored outbound payload (``ledger verify``).

    ``text`` is the matched stretch of the payload, which the ledger already holds.
    """

    field: str  # JSON path of the string inside the payload ("instruction"), or ""
    entity_type: str
    start: int
    end: int
    text: str
    origin: str  # the profile field the term came from ("Privacy_info", "Name", ...)


class PrivacyGuard:
    """Presidio plus the user's own deny-list. Cheap to create; share one per process.

    ``analyzer`` defaults to the process-wide Presidio engine, loaded on first use.
    Deny-list matchers are cached per user and profile version (``ctx.cache_key``).
    """

    def __init__(
        self,
        analyzer: Any | None = None,
        *,
        entities: Sequence[str] = DEFAULT_ENTITIES,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        cache_size: int = 64,
    ) -> None:
        self._analyzer = analyzer
        self.entities = list(entities)
        self.score_threshold = score_threshold
        self._cache_size = cache_size
        self._matchers: OrderedDict[str, TermMatcher] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def analyzer(self) -> Any:
        if self._analyzer is None:
            self._analyzer = shared_analyzer()
        return self._analyzer

    def warm_up(self) -> None:
        """Load Presidio and spaCy now rather than on the first request."""
        self.analyzer.analyze("warm up", language="en")

    # -- inspection ----------------------------------------------------------------------

    def inspect(
        self,
        text: str,
        ctx: UserContext | None = None,
        policy: Policy | str = "redact",
        *,
        extra_terms: Sequence[Term] = (),
        placeholders: Placeholders | None = None,
    ) -> GuardResult:
        """Decide what of ``text`` may leave.

        ``redact`` replaces findings with placeholders: numbered by ``placeholders`` when
        given (``<PERSON_1>``, the same value always the same one), else typed
        (``<PERSON>``). ``block`` returns ``blocked=True`` and an empty text if anything
        was found, ``off`` passes the text through untouched (for experiments only).
        ``extra_terms`` (the conversation's, see ``conversation_terms``) join the user's
        profile terms for this call.
        """
        started = time.perf_counter()
        policy = check_policy(policy)
        if policy == "off":
            return GuardResult(text, [], policy, False, time.perf_counter() - started)
        spans = self.presidio_spans(text)
        if ctx is not None:
            spans += self.matcher_for(ctx, extra_terms).find(text)
        elif extra_terms:
            spans += TermMatcher(extra_terms).find(text)
        merged = merge_spans(spans)
        blocked = policy == "block" and bool(merged)
        findings = [
            Finding(
                entity_type=span.entity_type,
                start=span.start,
                end=span.end,
                source=span.source if span.source in ("profile", "conversation") else "presidio",
                replaced_with=name_of(span, text, placeholders) if policy == "redact" else None,
                score=round(span.score, 3),
                digest=digest(text[span.start : span.end]),
            )
            for span in merged
        ]
        if policy == "redact":
            allowed = redact(text, merged, placeholders)
        else:
            allowed = "" if blocked else text
        return GuardResult(allowed, findings, policy, blocked, time.perf_counter() - started)

    def conversation_terms(self, texts: Iterable[str]) -> list[Term]:
        """The deny-list terms of a conversation's private texts (names, places,
        numbers, proper nouns, quoted strings)."""
        return conversation_terms(texts, spacy_pipeline(self.analyzer))

    def presidio_spans(self, text: str) -> list[Span]:
        if not text.strip():
            return []
        results = self.analyzer.analyze(
            text=text,
            language="en",
            entities=self.entities,
            score_threshold=self.score_threshold,
        )
        spans = []
        for result in results:
            recognizer = (result.recognition_metadata or {}).get("recognizer_name", "")
            start, end = result.start, result.end
            if recognizer == SPACY_RECOGNIZER:
                bounds = _plausible_name(text, start, end)
                if bounds is None:
                    continue
                start, end = bounds
            spans.append(Span(start, end, result.entity_type, "presidio", result.score, recognizer))
        return spans

    # -- the user's deny-list ------------------------------------------------------------

    def terms_for(self, ctx: UserContext) -> list[Term]:
        return self.matcher_for(ctx).terms

    def matcher_for(self, ctx: UserContext, extra_terms: Sequence[Term] = ()) -> TermMatcher:
        """The user's profile terms (cached per profile version), plus ``extra_terms``."""
        if extra_terms:
            return TermMatcher([*self.matcher_for(ctx).terms, *extra_terms])
        key = ctx.cache_key
        with self._lock:
            matcher = self._matchers.get(key)
            if matcher is not None:
                self._matchers.move_to_end(key)
                return matcher
        # Built outside the lock (spaCy takes ~0.2 s); a rare double build is harmless.
        matcher = TermMatcher(profile_terms(ctx, spacy_pipeline(self.analyzer)))
        with self._lock:
            self._matchers[key] = matcher
            while len(self._matchers) > self._cache_size:
                self._matchers.popitem(last=False)
        return matcher

    def verify_payload(self, payload_text: str, ctx: UserContext) -> list[PayloadHit]:
        """Profile terms of the user's CURRENT profile found in a stored payload.

        A JSON payload is searched string by string (escapes decoded), so a term inside
        ``"children\\u2019s"`` is still found.
        """
        matcher = self.matcher_for(ctx)
        hits = []
        for path, value in _strings_of(payload_text):
            for span in merge_spans(matcher.find(value)):
                hits.append(
                    PayloadHit(
                        field=path,
                        entity_type=span.entity_type,
                        start=span.start,
                        end=span.end,
                        text=value[span.start : span.end],
                        origin=span.origin,
                    )
                )
        return hits


def _plausible_name(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Where a spaCy PERSON/LOCATION span really is, or None if it is no name at all.

    spaCy's small model reads title-cased task headings as names ("Draft a Grant
    Proposal: ...", "AI"); those spans hold task words or public acronyms.
    """
    colon = text.find(":", start, end)
    if colon != -1:
        end = colon
    first = WORD_RE.match(text, start)
    rest = WORD_RE.search(text, first.end(), end) if first else None
    if rest and _opens_heading(text, start) and rest.group()[:1].isupper():
        start = rest.start()  # "Combine Emily's notes" -> "Emily's": drop the verb
    surface = text[start:end].strip()
    words = [w.casefold() for w in WORD_RE.findall(surface)]
    if not words or surface.casefold() in PUBLIC_NAMES:
        return None
    if any(word in TASK_WORDS or word in PUBLIC_NAMES for word in words):
        return None
    return start, start + len(text[start:end].rstrip())


def _opens_heading(text: str, start: int) -> bool:
    """True at the start of the text or right after a colon, quote or line break."""
    before = text[:start].rstrip(" \t")
    return not before or before[-1] in ":\n\"'“‘("


def _strings_of(payload_text: str) -> Iterator[tuple[str, str]]:
    try:
        document = json.loads(payload_text)
    except (json.JSONDecodeError, ValueError):
        yield "", payload_text
        return
    yield from _walk(document, "")


def _walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")
