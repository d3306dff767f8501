"""Who drafts the next round (``drafter="auto"``): the edge, the cloud, or nobody.

Three kinds of round deliver the cloud's distributions:

- ``edge``: the small model drafts N tokens one step at a time, the cloud scores them.
  Cost: (N + 1) edge steps plus the wait for the reply.
- ``cloud``: the cloud decodes N tokens of its own and returns them scored; the edge
  scores them in one batched pass and fuses. Cost: the wait (round trip plus the cloud's
  N decode steps), the batch pass and one edge step for the fused token, all measured
  as one number per round.
- ``none``: a step-by-step call (N = 0): one edge step plus the wait, one token.

A round with per-token acceptance a yields (1 - a^(N+1)) / (1 - a) tokens: the kept
run plus the one fused token after it. Per answer the chooser keeps each drafter's
acceptance (a Beta prior updated as rounds are kept) and the measured seconds, and
picks the kind with the most tokens per second. It tries the cloud once before it has
a cloud timing, and every ``explore_every`` rounds it runs the kind it has not run for
longest, so a cloud that gets faster or slower (a GPU, a loaded box) is noticed. Pure
arithmetic: no model, no clock; the loop reports what it measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Drafter = Literal["edge", "cloud", "auto"]  # the option; "auto" chooses per round
DRAFTERS: tuple[Drafter, ...] = ("edge", "cloud", "auto")
RoundKind = Literal["edge", "cloud", "none"]
ROUND_KINDS: tuple[RoundKind, ...] = ("edge", "cloud", "none")


def expected_tokens(acceptance: float, n: int) -> float:
    """Tokens one round yields on average: the kept part of n drafts, plus one."""
    if acceptance >= 1.0:
        return n + 1.0
    return (1.0 - acceptance ** (n + 1)) / (1.0 - acceptance)


def round_seconds(n: int, step_s: float, wait_s: float) -> float:
    """An edge round's cost on the edge: n drafts and one fused token, plus the wait."""
    return (n + 1) * step_s + wait_s


def _ema(old: float | None, new: float, weight: float) -> float:
    return new if old is None else (1 - weight) * old + weight * new


@dataclass
class Acceptance:
    """Per-token acceptance: a Beta prior of ``prior`` over ``weight`` tokens, updated."""

    prior: float
    weight: float = 8.0
    drafted: int = 0
    kept: int = 0

    @property
    def value(self) -> float:
        return (self.prior * self.weight + self.kept) / (self.weight + self.drafted)

    def observe(self, drafted: int, kept: int) -> None:
        if not 0 <= kept <= drafted:
            raise ValueError("need 0 <= kept <= drafted")
        self.drafted += drafted
        self.kept += kept


@dataclass
class DrafterChoice:
    """The kind of the next round, from what this answer has measured so far."""

    cloud_tokens: int = 8  # N of a cloud round
    explore_every: int = 8
    smoothing: float = 0.3
    edge: Acceptance = field(default_factory=lambda: Acceptance(0.85))
    cloud: Acceptance = field(default_factory=lambda: Acceptance(0.6))
    step_s: float | None = None  # one edge step
    edge_wait_s: float | None = None  # one edge-drafted (or plain) call's wait
    cloud_round_s: float | None = None  # a whole cloud round: wait, batch pass, fused step
    rounds: int = 0
    last_run: dict[str, int] = field(default_factory=dict)

    def observe_step(self, seconds: float) -> None:
        self.step_s = _ema(self.step_s, max(seconds, 0.0), self.smoothing)

    def observe_edge_wait(self, seconds: float) -> None:
        self.edge_wait_s = _ema(self.edge_wait_s, max(seconds, 0.0), self.smoothing)

    def observe_cloud_round(self, seconds: float) -> None:
        self.cloud_round_s = _ema(self.cloud_round_s, max(seconds, 0.0), self.smoothing)

    def rate(self, kind: RoundKind, edge_tokens: int) -> float | None:
        """Expected tokens per second of a round of this kind; None before it is timed."""
        if kind == "cloud":
            if self.cloud_round_s is None:
                return None
            tokens = expected_tokens(self.cloud.value, self.cloud_tokens)
            return tokens / max(self.cloud_round_s, 1e-9)
        if self.step_s is None or self.edge_wait_s is None:
            return None
        n = edge_tokens if kind == "edge" else 0
        tokens = expected_tokens(self.edge.value, n)
        return tokens / max(round_seconds(n, self.step_s, self.edge_wait_s), 1e-9)

    def next_round(self, edge_tokens: int) -> RoundKind:
        """The kind of the next round (``edge_tokens``: N if the edge drafts)."""
        self.rounds += 1
        kind = self._choose(edge_tokens)
        self.last_run[kind] = self.rounds
        return kind

    def _choose(self, edge_tokens: int) -> RoundKind:
        rates = {kind: self.rate(kind, edge_tokens) for kind in ROUND_KINDS}
        untimed = [kind for kind in ("cloud", "edge") if rates[kind] is None]
        if untimed:
            return untimed[0]
        if self.rounds % self.explore_every == 0:  # refresh the one not run for longest
            return min(ROUND_KINDS[:2], key=lambda kind: self.last_run.get(kind, 0))
        return max(ROUND_KINDS, key=lambda kind: rates[kind] or 0.0)
