"""How many tokens to draft per cloud call, from what one answer has shown so far.

A round sends N drafted tokens and waits for the cloud's scores. With a per-token
acceptance a, a round yields on average (1 - a^(N+1)) / (1 - a) tokens (the kept run
plus the one fused token after it) and costs the edge N + 1 small-model steps plus the
wait for the reply. Per answer the policy keeps the acceptance (a Beta prior updated
with what was drafted and kept), the small model's seconds per step and the seconds per
call (round trip plus the cloud's scoring), and picks the N with the most tokens per
second. A costlier round trip pays off over more tokens, so drafts grow with it;
falling acceptance shrinks them. Pure arithmetic: no model, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def expected_tokens(acceptance: float, n: int) -> float:
    """Tokens one round yields on average: the kept part of n drafts, plus one."""
    if acceptance >= 1.0:
        return n + 1.0
    return (1.0 - acceptance ** (n + 1)) / (1.0 - acceptance)


def round_seconds(n: int, step_s: float, wait_s: float) -> float:
    """One round's cost on the edge: n drafts and one fused token, plus the wait."""
    return (n + 1) * step_s + wait_s


def best_length(acceptance: float, step_s: float, wait_s: float, lo: int, hi: int) -> int:
    """The draft length in [lo, hi] with the most tokens per second (the shortest of ties)."""
    if not 1 <= lo <= hi:
        raise ValueError("need 1 <= lo <= hi")
    return max(
        range(lo, hi + 1),
        key=lambda n: (
            expected_tokens(acceptance, n) / max(round_seconds(n, step_s, wait_s), 1e-9),
            -n,
        ),
    )


def _ema(old: float | None, new: float, weight: float) -> float:
    return new if old is None else (1 - weight) * old + weight * new


@dataclass
class DraftLength:
    """The draft length for the next call, adapted within one answer.

    Until a step and a call have been timed it answers ``start``. ``prior_acceptance``
    with ``prior_weight`` pseudo-tokens keeps the first few rounds from swinging it.
    """

    start: int = 8
    lo: int = 1
    hi: int = 16
    prior_acceptance: float = 0.85
    prior_weight: float = 8.0
    smoothing: float = 0.3  # weight of the newest timing in the running averages
    drafted: int = 0
    accepted: int = 0
    step_s: float | None = None
    wait_s: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.lo <= self.start <= self.hi:
            raise ValueError("need 1 <= lo <= start <= hi")
        if not 0.0 < self.prior_acceptance < 1.0 or self.prior_weight <= 0:
            raise ValueError("the prior acceptance must be in (0, 1), its weight > 0")

    @property
    def acceptance(self) -> float:
        """Per-token acceptance: the prior, updated with the drafts kept so far."""
        kept = self.prior_acceptance * self.prior_weight + self.accepted
        return kept / (self.prior_weight + self.drafted)

    def observe_round(self, drafted: int, accepted: int) -> None:
        if not 0 <= accepted <= drafted:
            raise ValueError("need 0 <= accepted <= drafted")
        self.drafted += drafted
        self.accepted += accepted

    def observe_step(self, seconds: float) -> None:
        """Seconds the small model took for one token."""
        self.step_s = _ema(self.step_s, max(seconds, 0.0), self.smoothing)

    def observe_wait(self, seconds: float) -> None:
        """Seconds one call kept the edge waiting for its reply, from send to reply."""
        self.wait_s = _ema(self.wait_s, max(seconds, 0.0), self.smoothing)

    def next_length(self) -> int:
        if self.step_s is None or self.wait_s is None:
            return self.start
        return best_length(self.acceptance, self.step_s, self.wait_s, self.lo, self.hi)

    def lookahead(self) -> int:
        """Tokens worth drafting past a draft in flight: enough to cover the wait."""
        if self.step_s is None or self.wait_s is None or self.step_s <= 0:
            return self.start
        return max(self.lo, min(self.hi, math.ceil(self.wait_s / self.step_s)))
