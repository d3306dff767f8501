"""Words, stems and stopwords: the shared vocabulary of term building and term matching.

Matching private phrases must survive inflection and word order ("Volunteers bi-monthly"
in the profile, "bi-monthly volunteering" in a task), so both sides are reduced to the
same crude stems. A real stemmer would be better English; this one only has to agree
with itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spacy.lang.en.stop_words import STOP_WORDS

# A word: letters/digits, with inner hyphens or apostrophes ("bi-monthly", "children's").
WORD_RE = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
# Punctuation that ends a phrase: a private phrase never spans it.
PHRASE_BREAK_RE = re.compile(r"[.,;:!?()\[\]{}\"“”\n|/]")

STOPWORDS = frozenset(STOP_WORDS) | {"etc", "e.g", "i.e", "via", "s"}

# Content words too common to make a phrase private: a pair of neighbouring words is a
# private phrase only if neither of them is in here ("work email" is not a secret).
GENERIC_WORDS = frozenset(
    """
    day days daily week weeks weekly weekend weekends month months monthly year years yearly
    morning mornings evening evenings night nights today tonight tomorrow yesterday hour hours
    minute minutes time times schedule scheduled recent recently regular regularly currently
    usually frequently occasionally sometimes new old local personal private good great best
    work works worked working job use uses start started starting attend attends attended
    plan plans planned planning help helps helped helping want wants like likes love loves
    need needs try tries trying find found share shared sharing create created write wrote
    written writing read reading note notes list lists post posts email emails message messages
    text texts call calls app apps online website site page blog article story idea ideas
    thing things way ways lot lots people person friend friends family group team members
    life home place event events activity activities experience experiences project projects
    named called favorite favourite small big large high low long short various different
    include includes including involve involves involved recent latest upcoming future past
    community communities monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december
    """.split()
)


# Everyday compound nouns: topics, not facts about anyone. A private item that mentions
# "social media" does not make every task about social media private.
COMMON_PHRASES = """
social media, mental health, high school, middle school, public speaking, real estate,
digital marketing, content marketing, email marketing, work-life balance, smart device,
smart home, young professional, language learning, personal growth, self care, time
management, customer service, small business, case study, data analysis, machine learning,
artificial intelligence, climate change, fitness routine, healthy eating, daily routine,
online course, video call, text message, phone call, credit card, bank account, grocery list
"""


# Words of writing-task headings ("Draft a Grant Proposal: ...") that spaCy's small model
# takes for names in title case. No person or place name contains them.
TASK_WORDS = frozenset(
    """
    write draft compose create develop design prepare craft generate outline summarize
    share detail describe explain discuss highlight reflect organize plan curate formulate
    proposal text response narrative email post letter article essay blog story script
    speech guide template report review summary flyer brochure newsletter memo agenda
    invitation announcement description caption campaign strategy presentation checklist
    pitch statement tutorial lesson poem song lyrics toast eulogy bio
    """.split()
)


@dataclass(frozen=True, slots=True)
class Word:
    start: int
    end: int
    text: str
    stem: str
    is_stop: bool
    # True when a phrase break (comma, full stop, ...) sits between this word and the last.
    after_break: bool


def stem(word: str) -> str:
    """A crude, self-consistent stem: volunteers/volunteering/volunteered -> volunteer."""
    w = word.casefold().replace("’", "'")
    for possessive in ("'s", "'"):
        if w.endswith(possessive):
            w = w[: -len(possessive)]
    w = w.replace("-", "").replace("'", "")
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ing", "ed", "ly"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]  # running -> runn -> run
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]  # make / making -> mak
    return w


def words(text: str) -> list[Word]:
    """The words of ``text`` with their offsets, stems and phrase breaks."""
    out: list[Word] = []
    last_end = 0
    for match in WORD_RE.finditer(text):
        token = match.group()
        between = text[last_end : match.start()]
        out.append(
            Word(
                start=match.start(),
                end=match.end(),
                text=token,
                stem=stem(token),
                is_stop=_is_stop(token),
                after_break=bool(out) and bool(PHRASE_BREAK_RE.search(between)),
            )
        )
        last_end = match.end()
    return out


def _is_stop(token: str) -> bool:
    lowered = token.casefold().replace("’", "'")
    return lowered in STOPWORDS or (lowered.isdigit() and len(lowered) < 3)


def content_pairs(text: str, max_gap: int = 2) -> list[tuple[Word, Word]]:
    """Neighbouring content words: at most ``max_gap`` stopwords and no phrase break
    between them ("shelter on weekends" -> (shelter, weekends))."""
    pairs = []
    previous: Word | None = None
    gap = 0
    for word in words(text):
        if word.after_break:
            previous, gap = None, 0
        if word.is_stop:
            gap += 1
            continue
        if previous is not None and gap <= max_gap:
            pairs.append((previous, word))
        previous, gap = word, 0
    return pairs


def is_generic(word_stem: str) -> bool:
    """Too common (or too short, or a number) to make a phrase private."""
    return word_stem in GENERIC_STEMS or word_stem.isdigit() or len(word_stem) < 3


GENERIC_STEMS = frozenset(stem(w) for w in GENERIC_WORDS)
COMMON_PAIRS = frozenset(
    frozenset(w.stem for w in words(phrase)) for phrase in COMMON_PHRASES.split(",")
)
