"""``ledger verify``: re-scan what was sent against each user's CURRENT profile terms.

Profiles grow after requests leave (a new private item, a new name in the history), and
the guard may have been off for an experiment. Verify answers: did anything that is
private today leave earlier?
"""

from __future__ import annotations

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


def verify_ledger(
    store: Store,
    user_id: str | None = None,
    guard: PrivacyGuard | None = None,
    page_size: int = 500,
) -> VerifyReport:
    """Check every ledger entry (of one user, or of all) against current profile terms."""
    guard = guard or PrivacyGuard()
    contexts: dict[str, UserContext | None] = {}
    checked = skipped = 0
    hits: list[LedgerHit] = []
    offset = 0
    while True:
        entries, total = store.ledger.query(user_id=user_id, limit=page_size, offset=offset)
        for entry in entries:
            ctx = _context(store, entry.user_id, contexts)
            if ctx is None:
                skipped += 1
                continue
            checked += 1
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
            return VerifyReport(entries=checked, hits=hits, skipped=skipped)


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
