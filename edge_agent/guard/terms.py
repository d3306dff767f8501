"""The user's own deny-list: terms from their profile and history that must not leave.

Presidio knows what a name or an e-mail address looks like; it cannot know that
"children's hospital charity" is private to this user. These terms can:

- the name, whole and in parts, and the location, whole and in parts;
- people, organizations and places that spaCy finds in the profile and writing history;
- for every private-information item, its distinctive phrases: pairs of neighbouring
  content words, matched on stems and in any order, so "Volunteers bi-monthly" in the
  profile catches "bi-monthly volunteering" in a task.

Precision matters as much as recall: a deny-list that blanks out "work" or "email" makes
every request useless. So single common words are never terms, and a phrase counts only
if neither word is generic (``text.GENERIC_WORDS``), it is no everyday compound ("social
media", ``text.COMMON_PHRASES``), and it is not one of the user's open topics (it does not
occur in their occupation, style or past task titles).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from edge_agent.guard.text import COMMON_PAIRS, STOPWORDS, content_pairs, is_generic, stem
from edge_agent.store.context import UserContext

TermKind = Literal["literal", "phrase"]

# The origin of the terms a request's own conversation adds (guard/conversation.py).
CONVERSATION = "conversation"
# Fields whose items are private facts about the user (phrases are derived from these).
PRIVATE_FIELDS = ("Privacy_info",)
# Fields that describe what the user openly works on. A phrase found here too ("social
# media" for a marketer) is their everyday topic, not a secret: redacting it would gut
# every task they send.
PUBLIC_FIELDS = ("Occupation", "Personal_traits", "Writing_style", "Ai_assistant_usage")
# Fields scanned for names of people, organizations and places. Occupation and assistant
# usage are left out: they hold job titles and task verbs that spaCy mistakes for names.
ENTITY_FIELDS = ("Privacy_info", "Smart_device_usage")

SPACY_LABELS = {
    "PERSON": "PERSON",
    "ORG": "ORGANIZATION",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
}
HONORIFICS = {"mr", "mrs", "ms", "miss", "dr", "prof", "jr", "sr", "ii", "iii", "phd", "md"}


def _names(block: str) -> frozenset[str]:
    return frozenset(n.strip().casefold() for n in re.split(r"[,\n]", block) if n.strip())


# Names everybody uses: spaCy tags them as organizations, but they say nothing about who
# the user is, and tasks mention them all the time ("write an Instagram caption").
PUBLIC_NAMES = _names(
    """
    AI, API, CEO, CFO, COO, CTO, CMO, HR, PR, SEO, UI, UX, AR, VR, IT, NFT, ESG, KPI, ROI, MBA,
    Instagram, Facebook, Twitter, LinkedIn, TikTok, YouTube, WhatsApp, Snapchat, Pinterest,
    Reddit, Apple, Google, Amazon, Microsoft, Netflix, Spotify, Zoom, Slack, Uber, Airbnb, Etsy,
    Shopify, Canva, Adobe, Photoshop, Illustrator, Excel, PowerPoint, Notion, Trello, Asana,
    Fitbit, Alexa, Siri, Kindle, Audible, Duolingo, Headspace, Calm, Peloton, Strava, GitHub,
    Medium, Substack, Patreon, Discord, Twitch, Venmo, PayPal, iPhone, iPad, Android, Gmail,
    Outlook, Dropbox, Evernote, Pixel, Zillow, Yelp, Tinder, Bumble, Hinge, Coursera, Udemy,
    Skillshare, MasterClass, ChatGPT, OpenAI, Internet, Wi-Fi, Bluetooth, Email, Calendar,
    Notepad, Apple Music, Apple Watch, Google Calendar, Google Docs, Google Drive, Amazon Prime,
    IoT, WiFi, Earth, Mother Earth, Mother Nature, Hootsuite, Google Analytics, Messenger
    """
)


@dataclass(frozen=True)
class Term:
    """One thing to find in outbound text.

    ``literal`` terms match their text as whole words (``case_sensitive`` for single
    words like "Miles", where the lowercase form is an ordinary word). ``phrase`` terms
    match two neighbouring content words whose stems are ``stems``, in either order.
    """

    kind: TermKind
    text: str
    entity_type: str
    origin: str
    case_sensitive: bool = False
    stems: frozenset[str] = field(default_factory=frozenset)


def profile_terms(ctx: UserContext, nlp: Any | None = None) -> list[Term]:
    """All deny-list terms of one user. ``nlp`` is a spaCy pipeline; without one only
    the name, location and private phrases are derived (no named entities)."""
    terms: list[Term] = []
    terms += name_terms(ctx.fields.get("Name", ctx.name))
    terms += location_terms(ctx.fields.get("Location", ""))
    public = public_pairs(ctx)
    for label in PRIVATE_FIELDS:
        for item in ctx.items(label):
            terms += [t for t in phrase_terms(item, origin=label) if t.stems not in public]
    if nlp is not None:
        # Items start with a capital by convention ("Volunteers at ..."); spaCy would take
        # that first word for a name, so it is lowercased unless it looks like one (IoT).
        texts = [
            (label, _decapitalize(item)) for label in ENTITY_FIELDS for item in ctx.items(label)
        ]
        texts += [("history", text) for _title, text in ctx.history]
        terms += entity_terms(nlp, texts)
    return unique_terms(terms)


def public_pairs(ctx: UserContext) -> set[frozenset[str]]:
    """Stem pairs of the user's open topics: public fields and past task titles."""
    texts = [item for label in PUBLIC_FIELDS for item in ctx.items(label)]
    texts += [title for title, _text in ctx.history]
    return {frozenset((a.stem, b.stem)) for text in texts for a, b in content_pairs(text)}


def name_terms(name: str) -> list[Term]:
    name = " ".join(name.split())
    if not name:
        return []
    terms = [Term("literal", name, "PERSON", "Name")]
    for part in re.split(r"[\s,]+", name):
        part = part.strip(".")
        if len(part) >= 2 and part.casefold() not in HONORIFICS | STOPWORDS:
            terms.append(Term("literal", part, "PERSON", "Name", case_sensitive=True))
    return terms


def location_terms(location: str) -> list[Term]:
    location = " ".join(location.split())
    if not location:
        return []
    terms = [Term("literal", location, "LOCATION", "Location")]
    for part in (p.strip() for p in location.split(",")):
        if len(part) < 2 or part.casefold() in STOPWORDS:
            continue  # "IN", "OR", "ME" are states, and words
        # Place names are rarely ordinary words, so "austin" counts; "CA" must be upper.
        short = len(part) <= 3
        terms.append(Term("literal", part, "LOCATION", "Location", case_sensitive=short))
    return terms


def phrase_terms(item: str, origin: str) -> list[Term]:
    """Distinctive two-word phrases of one private item (see the module docstring)."""
    terms = []
    for first, second in content_pairs(item):
        stems = frozenset((first.stem, second.stem))
        if len(stems) < 2 or stems in COMMON_PAIRS:
            continue
        if is_generic(first.stem) or is_generic(second.stem):
            continue
        terms.append(
            Term(
                "phrase",
                item[first.start : second.end],
                "PRIVATE",
                origin,
                stems=stems,
            )
        )
    return terms


def entity_terms(
    nlp: Any,
    texts: Iterable[tuple[str, str]],
    proper_nouns_of: Collection[str] = PRIVATE_FIELDS,
) -> list[Term]:
    """People, organizations and places spaCy finds in ``(origin, text)`` pairs, and the
    proper nouns (``proper_nouns``) of the texts whose origin is in ``proper_nouns_of``.

    Matched case-sensitively: a name is written with capitals, and "warm regards" or
    "order" in lowercase are ordinary words.
    """
    texts = list(texts)
    terms = []
    docs = nlp.pipe((text for _, text in texts), disable=["lemmatizer"])
    for (origin, _text), doc in zip(texts, docs, strict=True):
        if origin in proper_nouns_of:
            terms += proper_nouns(doc, origin)
        for ent in doc.ents:
            entity_type = SPACY_LABELS.get(ent.label_)
            if entity_type is None:
                continue
            # A lone capitalized word opening a sentence or a quote is as often a verb
            # ("Embrace the journey", 'Draft - ...') as a name; spaCy cannot tell.
            if len(ent) == 1 and _opens_phrase(ent[0]):
                continue
            pieces = re.split(r"\s*(?::|\s-\s|–|—|\|)\s*", ent.text)
            for piece in pieces:
                surface = _clean_entity(piece)
                if surface and (len(pieces) == 1 or " " in surface):
                    terms.append(Term("literal", surface, entity_type, origin, case_sensitive=True))
    return terms


# Nationalities and languages are public vocabulary; spaCy also calls some place names
# NORP ("the Lakeside community center"), which the suffix tells apart.
_DEMONYM = re.compile(r"(?:an|ese|ish|ic|i|ch|ss|ek)s?$")


def proper_nouns(doc: Any, origin: str) -> list[Term]:
    """Runs of capitalized words inside a private item that spaCy did not already report
    as an entity ("at the Lakeside community center"): names of the user's places and
    things that the entity recognizer missed."""
    runs: list[list[Any]] = []
    for token in doc:
        if not token.text[:1].isupper() or _opens_phrase(token):
            continue
        missed = token.ent_type_ == "" or (
            token.ent_type_ == "NORP" and not _DEMONYM.search(token.text)
        )
        if not missed:
            continue
        if runs and runs[-1][-1].i == token.i - 1:
            runs[-1].append(token)
        else:
            runs.append([token])
    terms = []
    for run in runs:
        surface = _clean_entity(doc[run[0].i : run[-1].i + 1].text)
        if surface:
            terms.append(Term("literal", surface, "PRIVATE", origin, case_sensitive=True))
    return terms


_OPENERS = {"'", '"', "‘", "“", ":", "-", "–", "—", "(", "[", "*", "#", "•"}


def _opens_phrase(token: Any) -> bool:
    if token.is_sent_start or token.i == 0:
        return True
    before = token.doc[token.i - 1]
    return before.text in _OPENERS or "\n" in before.text_with_ws or before.is_space


def _decapitalize(item: str) -> str:
    first, _, rest = item.partition(" ")
    if len(first) > 1 and first[0].isupper() and first[1:].islower():
        return f"{first.lower()} {rest}" if rest else first.lower()
    return item


def _clean_entity(text: str) -> str | None:
    text = " ".join(text.split())
    text = re.sub(r"^(?:the|a|an)\s+", "", text, flags=re.IGNORECASE)
    text = re.sub(r"['’]s?$", "", text).strip(" .,-'‘’\"!?")
    words = text.split()
    if len(text) < 3 or not any(ch.isupper() for ch in text):
        return None  # "ai", "la": lowercase or too short to be a name
    if len(words) == 1 and len(text) <= 4 and text.upper() == text:
        return None  # acronyms (DIY, RSVP, MVP) name things, not people
    if text.casefold() in PUBLIC_NAMES or all(
        w.casefold() in STOPWORDS or w.casefold() in PUBLIC_NAMES or is_generic(stem(w))
        for w in words
    ):
        return None
    return text


def unique_terms(terms: Iterable[Term]) -> list[Term]:
    seen: dict[tuple, Term] = {}
    for term in terms:
        key = (term.kind, term.stems) if term.kind == "phrase" else (term.kind, term.text)
        seen.setdefault(key, term)
    return list(seen.values())
