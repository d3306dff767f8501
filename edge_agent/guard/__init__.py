"""The outbound privacy guard: Presidio plus a deny-list built from the user's own store.

Every text that may leave the device goes through ``PrivacyGuard.inspect`` first.
"""

from edge_agent.guard.engine import (
    DEFAULT_ENTITIES,
    GuardEngineError,
    shared_analyzer,
)
from edge_agent.guard.guard import PayloadHit, PrivacyGuard
from edge_agent.guard.protocol import Guard
from edge_agent.guard.result import (
    POLICIES,
    Finding,
    GuardResult,
    PayloadBlocked,
    Policy,
    UnknownPolicy,
)
from edge_agent.guard.terms import Term, profile_terms
from edge_agent.guard.verify import LedgerHit, VerifyReport, verify_ledger

__all__ = [
    "DEFAULT_ENTITIES",
    "POLICIES",
    "Finding",
    "Guard",
    "GuardEngineError",
    "GuardResult",
    "LedgerHit",
    "PayloadBlocked",
    "PayloadHit",
    "Policy",
    "PrivacyGuard",
    "Term",
    "UnknownPolicy",
    "VerifyReport",
    "profile_terms",
    "shared_analyzer",
    "verify_ledger",
]
