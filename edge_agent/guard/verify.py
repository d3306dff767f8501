"""``ledger verify``: re-scan what was sent against each user's CURRENT profile terms.

Profiles grow after requests leave (a new private item, a new name in the history), and
the guard may have been off for an experiment. Verify answers: did anything that is
private today leave earlier?
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge_agent.guard.guard import PayloadHit, PrivacyGuard
from edge_agent.store import Store, UserContext, UserNotFound


@dataclass(frozen=True)
class LedgerHit:
    entry_id: int
    user_id: str | None
    kind: str  # the entity type: PERSON, LOCATION, ORGANIZATION, PRIVATE
    description: str  # one line for people: what matched, from where, in which field
    hit: PayloadHit


@dataclass(frozen=True)
class VerifyReport:
    entries: int  # entries checked against a profile
    hits: list[LedgerHit] = field(default_factory=list)
    skipped: int = 0  # entries without a user, or whose profile is gone


Detokenize = Callable[[Sequence[int]], str]
_SESSION_STEP = re.compile(r"^/v1/sessions/([^/]+)/step$")


@dataclass
class _SessionText:
    """The token ids one logits session sent, in order, and who sent them."""

    user_id: str | None
    last_entry: int
    ids: list[int] = field(default_factory=list)


def verify_ledger(
    store: Store,
    user_id: str | None = None,
    guard: PrivacyGuard | None = None,
    page_size: int = 500,
    detokenize: Detokenize | None = None,
) -> VerifyReport:
    """Check every ledger entry (of one user, or of all) against current profile terms.

    Logits mode sends token ids, not text. With ``detokenize`` the ids each session sent
    (appended and drafted, in order) are turned back into the text the cloud could read
    and scanned too, so a private term split across calls is still found.
    """
    guard = guard or PrivacyGuard()
    contexts: dict[str, UserContext | None] = {}
    checked = skipped = 0
    hits: list[LedgerHit] = []
    sessions: dict[str, _SessionText] = {}
    offset = 0
    while True:
        entries, total = store.ledger.query(user_id=user_id, limit=page_size, offset=offset)
        for entry in entries:
            ctx = _context(store, entry.user_id, contexts)
            if ctx is None:
                skipped += 1
                continue
            checked += 1
            if detokenize is not None:
                _collect_token_ids(entry, sessions)
            for hit in guard.verify_payload(entry.payload_text, ctx):
                where = f" in {hit.field}" if hit.field else ""
                hits.append(
                    LedgerHit(
                        entry_id=entry.id,
                        user_id=entry.user_id,
                        kind=hit.entity_type,
                        description=f"{hit.text!r} matches {hit.origin or 'the profile'}{where}",
                        hit=hit,
                    )
                )
        offset += len(entries)
        if not entries or offset >= total:
            break
    for session in sessions.values():
        ctx = _context(store, session.user_id, contexts)
        if ctx is None or not session.ids or detokenize is None:
            continue
        for hit in guard.verify_payload(detokenize(session.ids), ctx):
            hits.append(
                LedgerHit(
                    entry_id=session.last_entry,
                    user_id=session.user_id,
                    kind=hit.entity_type,
                    description=f"{hit.text!r} in the generated tokens sent to the cloud "
                    f"matches {hit.origin or 'the profile'}",
                    hit=hit,
                )
            )
    return VerifyReport(entries=checked, hits=hits, skipped=skipped)


def _collect_token_ids(entry, sessions: dict[str, _SessionText]) -> None:
    match = _SESSION_STEP.match(entry.endpoint)
    if not match:
        return
    try:
        body = json.loads(entry.payload)
    except ValueError:
        return
    session = sessions.setdefault(match.group(1), _SessionText(entry.user_id, entry.id))
    # Pages come newest first: prepend so the ids end up in the order they were sent.
    session.ids[:0] = list(body.get("append", [])) + list(body.get("draft", []))
    session.last_entry = max(session.last_entry, entry.id)


def _context(
    store: Store, user_id: str | None, contexts: dict[str, UserContext | None]
) -> UserContext | None:
    if user_id is None:
        return None
    if user_id not in contexts:
        try:
            contexts[user_id] = store.profiles.load_context(user_id)
        except UserNotFound:
            contexts[user_id] = None
    return contexts[user_id]
