"""The conversation's own deny-list: distinctive terms of the app's messages.

Earlier turns and system messages are private context like the profile. A name the user
told in turn 1 ("my dog Biscuit") must not leave when the task, or the answer in logits
mode, repeats it, even though the profile never mentions it. For one request the guard
adds these terms to the user's profile terms:

- people, organizations and places that spaCy finds (as for the profile's history);
- proper nouns: capitalized words that do not open a sentence (``terms.proper_nouns``);
- numbers of two digits or more ("1987", "42", "5,000"); single digits are everyday
  words ("top 5 tips") and say little;
- quoted strings ("the 'Blue Heron' project"): quoting marks a name or a phrase as
  the user's own.

Matched like profile literals: whole words, names case-sensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from edge_agent.guard.terms import CONVERSATION as ORIGIN
from edge_agent.guard.terms import Term, entity_terms, unique_terms

# Two or more digits, with the separators of amounts, dates and times inside.
_NUMBER_RE = re.compile(r"(?<![\w.])\d[\d,.:/-]*\d(?![\w])")
# Text in double quotes of any kind, or in single quotes that stand apart from words
# (so the apostrophes of "don't" and "Sam's" open nothing).
_QUOTED_RE = re.compile(r"[\"“”]([^\"“”\n]{2,80})[\"“”]|(?<!\w)['‘]([^'‘’\n]{2,80})['’](?!\w)")


def conversation_terms(texts: Iterable[str], nlp: Any | None = None) -> list[Term]:
    """Deny-list terms of the conversation's private texts. ``nlp`` is a spaCy pipeline;
    without one, only numbers and quoted strings are found."""
    texts = [text for text in texts if text.strip()]
    terms: list[Term] = []
    for text in texts:
        terms += [Term("literal", n, "NUMBER", ORIGIN) for n in _NUMBER_RE.findall(text)]
        for match in _QUOTED_RE.finditer(text):
            quoted = (match.group(1) or match.group(2)).strip(" .,;:!?")
            if len(quoted) >= 2:
                terms.append(Term("literal", quoted, "QUOTED", ORIGIN))
    if nlp is not None and texts:
        terms += entity_terms(nlp, [(ORIGIN, text) for text in texts], proper_nouns_of={ORIGIN})
    return unique_terms(terms)
