"""Token choice: greedy, or temperature / top-p sampling from a per-request seeded stream.

Sampling is by inverse CDF with ONE uniform number per output position: position s
uses ``u_s``, the s-th draw of a `numpy.random.Generator` seeded for the request. The
candidates are ordered by descending probability (ties: smaller token id first), the
top-p nucleus is kept, and the token whose cumulative mass first exceeds ``u_s`` times
the nucleus mass is chosen.

Tying the uniform to the position (not to the number of calls made) is what lets
draft-and-verify reproduce step-by-step sampling exactly: see docs/logits.md.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

_PARTIAL = 256  # candidates sorted before falling back to a full sort


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


class UniformStream:
    """Uniforms in [0, 1) by output position, drawn lazily in position order."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = secrets.randbits(63) if seed is None else int(seed)
        # OpenAI's seeds are signed 64-bit; numpy wants a non-negative one.
        self._rng = np.random.default_rng(self.seed % 2**64)
        self._values: list[float] = []

    def at(self, position: int) -> float:
        while len(self._values) <= position:
            self._values.append(float(self._rng.random()))
        return self._values[position]


def pick(
    logprobs: np.ndarray,
    params: SamplingParams,
    u: float = 0.0,
    token_ids: np.ndarray | None = None,
) -> int:
    """Choose a token from log-probs (full vocabulary, or over `token_ids`)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    if lp.ndim != 1 or len(lp) == 0:
        raise ValueError("logprobs must be a non-empty 1-D array")
    ids = None if token_ids is None else np.asarray(token_ids, dtype=np.int64)
    if params.greedy:
        # np.argmax keeps the first maximum; make "first" mean "smallest id".
        best = lp.max()
        hits = np.nonzero(lp == best)[0]
        if ids is None:
            return int(hits[0])
        return int(ids[hits].min())
    scores = lp / params.temperature
    scores = scores - scores[np.isfinite(scores)].max()
    p = np.where(np.isfinite(scores), np.exp(scores), 0.0)
    total = float(p.sum())
    n = len(p)
    names = np.arange(n) if ids is None else ids
    m = min(n, _PARTIAL)
    while True:
        top = np.arange(n) if m >= n else np.argpartition(-p, m - 1)[:m]
        order = top[np.lexsort((names[top], -p[top]))]
        cum = np.cumsum(p[order])
        if params.top_p < 1.0:
            cut = int(np.searchsorted(cum, params.top_p * total, side="left"))
            if cut >= len(cum) and m < n:
                m = n
                continue
            cut = min(cut, len(cum) - 1)
            kept = float(cum[cut])
        else:
            cut, kept = n - 1, total
        j = int(np.searchsorted(cum, u * kept, side="right"))
        if j < len(cum) and j <= cut:
            return int(names[order[j]])
        if m >= n:
            return int(names[order[min(j, cut, len(cum) - 1)]])
        m = n
