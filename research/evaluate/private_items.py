"""Which of a user's private items a text gives away: the leakage metric of `eval run`
and bench/leakage.py.

The private items of a CoGenesis record, and when an item counts as leaked:

- ``name``: each part of the name ("Isabel", "Martinez") as a whole word, with its
  capitals (a name is written that way; "grace" in lowercase is a word, not a leak);
- ``location``: each comma-separated part of the location ("Miami", "Florida";
  "San Francisco", "CA"), likewise;
- ``private``: each "; "-separated private-information item, by its DISTINCTIVE CONTENT
  WORDS: its words minus stopwords and generic words (``edge_agent.guard.text``: "day",
  "local", "work", ...), compared on stems so inflections match. The item "Volunteers at
  local animal shelter on weekends" has {volunteer, animal, shelter}; it counts as
  leaked when ALL of them appear in what the cloud could read of one request, in any
  order and anywhere (the cloud reads the whole request). Items without a distinctive
  word are not counted. A looser secondary count, ``partial``, takes an item as leaked
  when at least half of its distinctive words (and at least two, if it has two) appear:
  long items rarely appear whole, but "tech start-up" already says a lot.

This uses the guard's stemmer and stopwords, not its matching: the guard looks for
neighbouring pairs of words, the metric for the words anywhere, so a reworded or
scattered mention still counts here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from edge_agent.guard.text import STOPWORDS, WORD_RE, is_generic, stem

Kind = Literal["name", "location", "private"]
KINDS: tuple[Kind, ...] = ("name", "location", "private")


@dataclass(frozen=True)
class PrivateItem:
    kind: Kind
    text: str
    stems: frozenset[str] = frozenset()  # for "private": the distinctive content words

    def leaked(self, text: str, text_stems: frozenset[str]) -> bool:
        if self.kind == "private":
            return self.stems <= text_stems
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, self.text.split())) + r"(?!\w)"
        return re.search(pattern, text) is not None

    def partly_leaked(self, text: str, text_stems: frozenset[str]) -> bool:
        if self.kind != "private":
            return self.leaked(text, text_stems)
        need = min(len(self.stems), max(2, math.ceil(len(self.stems) / 2)))
        return len(self.stems & text_stems) >= need


def profile_fields(record: dict) -> dict[str, str]:
    fields = {}
    for line in str(record.get("additional_profile", "")).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def private_items(record: dict) -> list[PrivateItem]:
    fields = profile_fields(record)
    items = [
        PrivateItem("name", part)
        for part in fields.get("Name", "").replace(",", " ").split()
        if len(part.strip(".")) >= 2 and part.casefold() not in STOPWORDS
    ]
    items += [
        PrivateItem("location", part.strip())
        for part in fields.get("Location", "").split(",")
        if len(part.strip()) >= 2
    ]
    for item in fields.get("Privacy_info", "").split(";"):
        stems = distinctive_stems(item)
        if stems:
            items.append(PrivateItem("private", item.strip(), stems))
    return items


def distinctive_stems(text: str) -> frozenset[str]:
    out = set()
    for word in WORD_RE.findall(text):
        folded = word.casefold().replace("’", "'")
        if folded in STOPWORDS or folded.isdigit():
            continue
        word_stem = stem(word)
        if not is_generic(word_stem):
            out.add(word_stem)
    return frozenset(out)


def text_stems(text: str) -> frozenset[str]:
    return frozenset(stem(word) for word in WORD_RE.findall(text))


def leaks(items: list[PrivateItem], text: str, partial: bool = False) -> list[PrivateItem]:
    """The items that ``text`` gives away (``partial``: by the looser count)."""
    stems = text_stems(text)
    if partial:
        return [item for item in items if item.partly_leaked(text, stems)]
    return [item for item in items if item.leaked(text, stems)]
