"""Prefix redaction: what the cloud may see of the answer the edge is generating.

In logits mode the cloud learns the ids of every generated token. The small model
writes with the user's profile in view and often copies private details into the
answer, so those ids would carry them. A view sits between the edge's tokens and the
cloud session:

- tokens flow through it one by one; while the trailing text could still become one of
  the user's profile terms (a word-level, case-insensitive prefix of a literal term, or
  a content word that could start a private phrase) those tokens are HELD BACK: the
  cloud cannot score the next position, so the small model decides it alone (it knows
  the private detail anyway);
- when the held text can no longer be a term, the tokens are released unchanged, so
  the cloud's sequence is token-identical to the edge's in the common case;
- when a term completes (a non-word character or the end follows), placeholder tokens
  ("<PERSON>", with the original leading space) are released instead.

Only the user's profile terms (``TermMatcher``, ~0.5 ms) run here: Presidio takes tens
of milliseconds per call, far too slow per token. Presidio guards the public prompt;
the prefix uses the profile terms, which is where the small model's private details
come from (docs/privacy.md).

``IdentityView`` has the same interface and releases every token as it comes (policy
``off`` or prefix redaction disabled), so the logits loop has a single code path.
"""

from __future__ import annotations

import bisect
import codecs
import copy
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_agent.guard.matcher import Span, TermMatcher
from edge_agent.guard.placeholders import Placeholders
from edge_agent.guard.result import digest, merge_spans, name_of, placeholder
from edge_agent.guard.terms import CONVERSATION
from edge_agent.guard.text import PHRASE_BREAK_RE, STOPWORDS, Word, words

# True text kept before the held tokens: the matcher needs the preceding character for
# its word boundaries. A term never starts inside released text, so a short tail will do.
TAIL_CHARS = 64
_SPACE_RE = re.compile(r"\s+")
_START_RE = re.compile(r"(?<!\w)\w")  # where a whole-word term may begin
_LEAD_RE = re.compile(r"^\W+")  # terms are checked from their first word character
MAX_PHRASE_GAP = 2  # stopwords allowed between the two words of a phrase (text.py)


class Tokenizer(Protocol):
    """What the view needs of the small model (``SmallModel`` fits)."""

    def tokenize(self, text: str) -> list[int]: ...

    def detokenize(self, ids: Sequence[int]) -> bytes: ...


@dataclass(frozen=True)
class Redaction:
    """One private span replaced in the cloud's copy; never holds the private text."""

    entity_type: str
    origin: str  # the profile field the term came from
    digest: str  # 8 hex digits of sha256 of the true text (tells repeats apart)
    length: int  # characters of the true text
    start: int  # index of the first placeholder token in the cloud's sequence
    end: int
    replaced_with: str = ""  # the placeholder released instead ("<PERSON_1>")

    def to_record(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type,
            "source": "conversation" if self.origin == CONVERSATION else "profile",
            "where": "prefix",
            "origin": self.origin,
            "token_start": self.start,
            "token_end": self.end,
            "length": self.length,
            "digest": self.digest,
            "replaced_with": self.replaced_with or placeholder(self.entity_type),
        }


class TermPrefixes:
    """Could the text from a word start still grow into one of the user's terms?

    Literal terms: the text (whitespace squashed, case folded) is a prefix of a term or
    equals one whose word boundary is still unknown. Phrase terms (two neighbouring
    content words, on stems, any order): a content word whose stem belongs to a phrase
    stays live until its next content word is known, a phrase break comes, or too many
    stopwords pass.
    """

    def __init__(self, matcher: TermMatcher) -> None:
        literals = {_LEAD_RE.sub("", _norm(t.text)) for t in matcher.terms if t.kind == "literal"}
        self._literals = sorted(s for s in literals if s)
        self._partners: dict[str, set[str]] = {}
        for term in matcher.terms:
            if term.kind == "phrase":
                for s in term.stems:
                    self._partners.setdefault(s, set()).update(term.stems - {s})
        self._stems = _StemPrefixes(self._partners)
        self._partner_prefixes = {s: _StemPrefixes(p) for s, p in self._partners.items()}

    def live_start(self, text: str, offset: int) -> int:
        """The first word start at or after ``offset`` that could still begin a term,
        or ``len(text)`` if none can."""
        ws = words(text)
        phrase_starts = {w.start: i for i, w in enumerate(ws) if w.start >= offset}
        # Literal terms start wherever the matcher's (?<!\w) allows, also inside a
        # hyphenated word ("Isabel-Martinez"); phrases start at whole words.
        for start in sorted({m.start() for m in _START_RE.finditer(text, offset)}):
            if self._literal_live(text, start):
                return start
            i = phrase_starts.get(start)
            if i is not None and self._phrase_live(text, ws, i):
                return start
        return len(text)

    def _literal_live(self, text: str, start: int) -> bool:
        rest = _norm(text[start:])
        i = bisect.bisect_left(self._literals, rest)
        return i < len(self._literals) and self._literals[i].startswith(rest)

    def _phrase_live(self, text: str, ws: list[Word], i: int) -> bool:
        if not self._partners:
            return False
        word = ws[i]
        if not _complete(text, word):
            return self._stems.could_be(word.text)
        if word.is_stop or word.stem not in self._partners:
            return False
        gap = 0
        for nxt in ws[i + 1 :]:
            if nxt.after_break:
                return False
            if not _complete(text, nxt):  # still being written: a partner, or a stopword?
                return self._partner_prefixes[word.stem].could_be(nxt.text) or (
                    gap < MAX_PHRASE_GAP and _STOP_PREFIXES.could_be(nxt.text)
                )
            if not nxt.is_stop:
                return False  # the pair is decided; the matcher knows whether it is one
            gap += 1
            if gap > MAX_PHRASE_GAP:
                return False
        after = ws[-1].end if ws[i + 1 :] else word.end
        return not PHRASE_BREAK_RE.search(text, after)


class _StemPrefixes:
    """Could an unfinished word still end up with one of these stems?

    stem() may change the last letter (stories -> story, make -> mak), so a word can
    end with stem s if it and s[:-1] agree as far as both go.
    """

    def __init__(self, stems: Iterable[str]) -> None:
        self._cores = {s[:-1] or s for s in stems}
        self._prefixes = {c[:i] for c in self._cores for i in range(1, len(c) + 1)}

    def could_be(self, partial: str) -> bool:
        w = partial.casefold().replace("'", "").replace("’", "").replace("-", "")
        if not w or w in self._prefixes:
            return bool(self._cores)
        return any(w[:n] in self._cores for n in range(1, len(w) + 1))


class _StopPrefixes:
    """Could an unfinished word still be a stopword?"""

    def __init__(self) -> None:
        self._prefixes = {w[:i] for w in STOPWORDS for i in range(1, len(w) + 1)}

    def could_be(self, partial: str) -> bool:
        return partial.casefold().replace("’", "'") in self._prefixes or partial.isdigit()


_STOP_PREFIXES = _StopPrefixes()


def _norm(text: str) -> str:
    return _SPACE_RE.sub(" ", text).casefold()


def _complete(text: str, word: Word) -> bool:
    """A word is finished once a character follows that cannot extend it."""
    end = word.end
    if end >= len(text):
        return False
    # "bi-" or "children'" may continue ("bi-monthly", "children's").
    return not (text[end] in "'’-" and end + 1 == len(text))


@dataclass
class _Held:
    token: int
    piece: bytes


@dataclass
class CloudView:
    """Maps the edge's generated tokens to the tokens the cloud may see (see module doc).

    ``released`` is the cloud's copy of the answer so far; ``in_sync`` is True when no
    edge token is held back, i.e. the cloud's copy covers the whole generated prefix
    and the cloud's next-token distribution is usable for the edge's next position.
    """

    matcher: TermMatcher
    tokenizer: Tokenizer
    prefixes: TermPrefixes | None = None
    placeholders: Placeholders | None = None  # the request's numbering (guard/placeholders.py)
    released: list[int] = field(default_factory=list)
    redactions: list[Redaction] = field(default_factory=list)
    seconds: float = 0.0  # time spent matching (the per-token guard cost)
    _held: list[_Held] = field(default_factory=list)
    _tail: str = ""  # the true text released last (for word boundaries)

    def __post_init__(self) -> None:
        if self.prefixes is None:
            self.prefixes = TermPrefixes(self.matcher)

    @property
    def in_sync(self) -> bool:
        return not self._held

    @property
    def held(self) -> int:
        return len(self._held)

    def feed(self, token: int) -> None:
        started = time.perf_counter()
        self._held.append(_Held(token, self.tokenizer.detokenize([token])))
        self._release(final=False)
        self.seconds += time.perf_counter() - started

    def flush(self) -> None:
        """The answer ended: a term at the very end is complete; release everything."""
        started = time.perf_counter()
        if self._held:
            self._release(final=True)
        self.seconds += time.perf_counter() - started

    def fork(self) -> CloudView:
        """An independent copy, to see what a draft would release."""
        twin = copy.copy(self)
        twin.released = list(self.released)
        twin.redactions = list(self.redactions)
        twin._held = list(self._held)
        return twin

    def records(self, start: int, end: int) -> list[dict[str, Any]]:
        """Ledger records of the redactions among cloud tokens [start, end)."""
        return [r.to_record() for r in self.redactions if r.start < end and r.end > start]

    # --- internals -------------------------------------------------------------------

    def _release(self, final: bool) -> None:
        text, segments, partial = self._decode()
        if partial and not final:
            segments = segments[:-1]  # never cut inside a character
        offset = len(self._tail)
        full = self._tail + text
        spans = [
            s for s in merge_spans(self.matcher.find(full)) if s.start >= offset and s.end > s.start
        ]
        assert self.prefixes is not None
        limit = len(full) if final else self.prefixes.live_start(full, offset)
        if not final:
            # A term found across the limit (a phrase whose second word is done) is held
            # whole, so it is released as one placeholder once everything is decided.
            for span in sorted(spans, key=lambda s: s.start, reverse=True):
                if span.start < limit < span.end or (span.end == len(full) and span.start < limit):
                    limit = span.start
        cut = _cut(segments, limit - offset, [(s.start - offset, s.end - offset) for s in spans])
        if cut == 0:
            return
        n_tokens = segments[cut - 1][1]
        done = [s for s in spans if s.end - offset <= segments[cut - 1][3]]
        self._emit(full, offset, segments[:cut], done)
        self._tail = (self._tail + text[: segments[cut - 1][3]])[-TAIL_CHARS:]
        self._held = self._held[n_tokens:]

    def _decode(self) -> tuple[str, list[tuple[int, int, int, int]], bool]:
        """The held text and its segments (token from, token to, char start, char end):
        runs of tokens ending on a whole character, the only places a cut may fall."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = ""
        segments: list[tuple[int, int, int, int]] = []
        first, start = 0, 0
        for i, held in enumerate(self._held):
            text += decoder.decode(held.piece)
            if decoder.getstate()[0]:
                continue  # a character split across tokens: no boundary here
            segments.append((first, i + 1, start, len(text)))
            first, start = i + 1, len(text)
        partial = first < len(self._held)
        if partial:  # an unfinished character at the end: only a flush releases it
            segments.append((first, len(self._held), start, len(text)))
        return text, segments, partial

    def _emit(
        self,
        full: str,
        offset: int,
        segments: list[tuple[int, int, int, int]],
        spans: list[Span],
    ) -> None:
        i = 0
        pending = sorted(spans, key=lambda s: s.start)
        while i < len(segments):
            if not pending or segments[i][3] <= pending[0].start - offset:
                a, b = segments[i][0], segments[i][1]
                self.released += [h.token for h in self._held[a:b]]
                i += 1
                continue
            # Segments covering one or more spans become one re-tokenized piece.
            j = i
            group: list[Span] = []
            while pending and pending[0].start - offset < segments[j][3]:
                span = pending.pop(0)
                group.append(span)
                while segments[j][3] < span.end - offset:
                    j += 1
            piece, cursor, names = [], segments[i][2] + offset, []
            for span in group:
                names.append(name_of(span, full, self.placeholders))
                piece += [full[cursor : span.start], names[-1]]
                cursor = span.end
            piece.append(full[cursor : segments[j][3] + offset])
            ids = self.tokenizer.tokenize("".join(piece))
            start = len(self.released)
            self.released += ids
            for span, name in zip(group, names, strict=True):
                original = full[span.start : span.end]
                self.redactions.append(
                    Redaction(
                        span.entity_type,
                        span.origin,
                        digest(original),
                        len(original),
                        start,
                        len(self.released),
                        name,
                    )
                )
            i = j + 1


def _cut(
    segments: list[tuple[int, int, int, int]], limit: int, spans: list[tuple[int, int]]
) -> int:
    """How many segments may be released: those ending at or before ``limit``, minus any
    that would split a span (a span is released whole or not at all)."""
    cut = 0
    while cut < len(segments) and segments[cut][3] <= limit:
        cut += 1
    moved = True
    while moved and cut:
        moved = False
        edge = segments[cut - 1][3]
        for start, end in spans:
            if start < edge < end:
                while cut and segments[cut - 1][3] > start:
                    cut -= 1
                moved = True
                break
    return cut


@dataclass
class IdentityView:
    """No redaction: every token is released as it comes (policy "off", or disabled)."""

    released: list[int] = field(default_factory=list)
    redactions: list[Redaction] = field(default_factory=list)
    seconds: float = 0.0
    in_sync: bool = True
    held: int = 0

    def feed(self, token: int) -> None:
        self.released.append(token)

    def flush(self) -> None:
        pass

    def fork(self) -> IdentityView:
        return IdentityView(list(self.released))

    def records(self, start: int, end: int) -> list[dict[str, Any]]:
        return []


View = CloudView | IdentityView


def make_view(
    matcher: TermMatcher | None,
    tokenizer: Tokenizer,
    placeholders: Placeholders | None = None,
) -> View:
    """A redacting view for a user's matcher, or the identity view without one.
    ``placeholders`` numbers the redactions consistently with the rest of the request."""
    if matcher is None or not matcher.terms:
        return IdentityView()
    return CloudView(matcher, tokenizer, placeholders=placeholders)


def cloud_tokens(matcher: TermMatcher | None, tokenizer: Tokenizer, tokens: Sequence[int]) -> View:
    """Run a whole token sequence through a view (and flush it): for evaluation."""
    view = make_view(matcher, tokenizer)
    for token in tokens:
        view.feed(token)
    view.flush()
    return view
