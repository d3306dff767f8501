"""Fusion rules: pure functions over top-k arrays.

At a collaborating step the edge holds its own next-token log-probs (the small model,
WITH the private context; usually the full vocabulary, or only its top-k) and the cloud's
`TopK` (the large model, WITHOUT context). A rule turns the two into one distribution.

Probability of a token the cloud did not send (the remaining-mass rule): the cloud's
top-k log-probs are normalized over the full vocabulary, so the mass it did not send is
``rest = 1 - sum(exp(topk))``. We spread it uniformly over the ``V - k`` other tokens:
``p_cloud(t) = rest / (V - k)`` for t outside the top-k (``rest`` floored at
`REST_FLOOR` against rounding). The same rule applies to an edge given as top-k only.

Two normalizations:
- `fuse` (decoding) scores a candidate set, the union of the edge's and the cloud's
  top-k (plus any ids asked for), and normalizes over it. The argmax of every rule lies
  in that union (a token outside both top-k sets never beats the edge's top-1), so
  greedy decoding is exact; sampling is truncated to the union, like top-k sampling,
  which keeps the uniform "rest" mass from ever emitting random tokens.
- `fused_logprob` (evaluation) normalizes over the full vocabulary, so teacher-forced
  NLL is a proper likelihood even when the reference token is outside both top-k sets.

Rules (all in probability space, as in the CoGenesis paper):
- ``mean``: ``(p_e + p_c) / 2``
- ``max``: ``max(p_e, p_c)``, renormalized
- ``weighted``: ``alpha * p_e + (1 - alpha) * p_c`` (alpha weights the small model)
- ``gate``: ``w * p_e + (1 - w) * p_c`` with w from a `WeightModel` (the learned gate,
  gate.py) asked at every step

These four are the serving rules, named by `FusionRuleName`. The research package adds
rules for evaluation only (``logmean``, ``edge``, ``cloud``) in `research.rules`.

This module is pure: it imports numpy and nothing of the project, so every other module
may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import numpy as np

FusionRuleName = Literal["mean", "max", "weighted", "gate"]
"""The fusion rules a request or the edge's settings may choose (the serving rules)."""
FUSION_RULE_NAMES: tuple[FusionRuleName, ...] = get_args(FusionRuleName)

REST_FLOOR = 1e-9
"""Smallest mass assumed outside a top-k (its log-probs can sum to 1 by rounding)."""


class TopKLike(Protocol):
    token_ids: Sequence[int]
    logprobs: Sequence[float]


@dataclass(frozen=True)
class TopKArrays:
    """A top-k as numpy arrays; ``vocab_size`` is the size of the full vocabulary."""

    token_ids: np.ndarray
    logprobs: np.ndarray
    vocab_size: int


Side = np.ndarray | TopKArrays


@dataclass(frozen=True)
class Fused:
    """A fused distribution over candidate ids; ``logprobs`` log-sum-exp to 0."""

    token_ids: np.ndarray
    logprobs: np.ndarray
    weight: float | None = None  # the small model's weight, for mixture rules

    def argmax(self) -> int:
        """Most likely candidate; ties go to the smallest token id."""
        best = self.logprobs.max()
        return int(self.token_ids[self.logprobs == best].min())

    def logprob_of(self, token_id: int) -> float:
        hit = np.nonzero(self.token_ids == token_id)[0]
        return float(self.logprobs[hit[0]]) if len(hit) else float("-inf")


def as_topk(topk: TopKLike | TopKArrays, vocab_size: int) -> TopKArrays:
    """Arrays of a wire `TopK` (or anything with token_ids/logprobs)."""
    if isinstance(topk, TopKArrays):
        return topk
    ids = np.asarray(topk.token_ids, dtype=np.int64)
    lps = np.asarray(topk.logprobs, dtype=np.float64)
    if ids.shape != lps.shape or ids.ndim != 1:
        raise ValueError("token_ids and logprobs must be 1-D and of the same length")
    if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token id out of range for a vocabulary of {vocab_size}")
    return TopKArrays(ids, lps, vocab_size)


def topk_of(logprobs: np.ndarray, k: int) -> TopKArrays:
    """The top-k of full log-probs, sorted descending (ties by smaller id)."""
    k = min(k, len(logprobs))
    part = np.argpartition(-logprobs, k - 1)[:k]
    order = np.lexsort((part, -logprobs[part]))
    ids = part[order].astype(np.int64)
    return TopKArrays(ids, logprobs[ids].astype(np.float64), len(logprobs))


def rest_logprob(topk: TopKArrays) -> float:
    """Log-prob of ONE token outside the top-k under the remaining-mass rule."""
    mass = float(np.exp(topk.logprobs).sum())
    rest = np.maximum(1.0 - mass, REST_FLOOR)
    others = np.maximum(topk.vocab_size - len(topk.token_ids), 1)
    return float(np.log(rest) - np.log(others))


def side_logprobs(side: Side, ids: np.ndarray) -> np.ndarray:
    """Log-probs of `ids` under one side: exact when full, remaining-mass rule if top-k."""
    if isinstance(side, np.ndarray):
        return side[ids].astype(np.float64)
    out = np.full(len(ids), rest_logprob(side), dtype=np.float64)
    pos = {int(t): i for i, t in enumerate(side.token_ids)}
    for j, t in enumerate(ids):
        i = pos.get(int(t))
        if i is not None:
            out[j] = side.logprobs[i]
    return out


def side_full(side: Side) -> np.ndarray:
    """Full-vocabulary log-probs of one side (remaining-mass rule for a top-k)."""
    if isinstance(side, np.ndarray):
        return side.astype(np.float64)
    full = np.full(side.vocab_size, rest_logprob(side), dtype=np.float64)
    full[side.token_ids] = side.logprobs
    return full


def side_top(side: Side, k: int) -> TopKArrays:
    if isinstance(side, np.ndarray):
        return topk_of(side, k)
    return TopKArrays(side.token_ids[:k], side.logprobs[:k], side.vocab_size)


# --- rules ------------------------------------------------------------------------------
#
# A rule maps the two sides' log-probs at the same ids to unnormalized fused log-scores.
# `edge` and `cloud` are passed too, for rules that look at the whole distributions.

Combine = Callable[[np.ndarray, np.ndarray, Side, TopKArrays], tuple[np.ndarray, float | None]]


@dataclass(frozen=True)
class FusionRule:
    name: str
    combine: Combine
    mixture: bool  # a convex mixture of two normalized distributions: already normalized

    def __call__(
        self,
        edge: Side,
        cloud: TopKLike | TopKArrays,
        *,
        edge_k: int | None = None,
        extra_ids: Sequence[int] = (),
    ) -> Fused:
        return fuse(self, edge, cloud, edge_k=edge_k, extra_ids=extra_ids)


def _mix(alpha: float) -> Combine:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")

    def combine(le, lc, edge, cloud):
        return _log_mix(le, lc, alpha), alpha

    return combine


def _log_mix(le: np.ndarray, lc: np.ndarray, w: float) -> np.ndarray:
    """log(w * exp(le) + (1 - w) * exp(lc)), stable, exact at w in {0, 1}."""
    if w >= 1.0:
        return le.copy()
    if w <= 0.0:
        return lc.copy()
    a = np.log(w) + le
    b = np.log1p(-w) + lc
    return np.logaddexp(a, b)


def _max(le, lc, edge, cloud):
    return np.maximum(le, lc), None


def weighted(alpha: float) -> FusionRule:
    """``alpha * p_edge + (1 - alpha) * p_cloud``."""
    return FusionRule(f"weighted({alpha:g})", _mix(alpha), mixture=True)


class WeightModel(Protocol):
    """Predicts the small model's mixing weight in [0, 1] from the two sides at a step."""

    def mixing_weight(self, edge: Side, cloud: TopKArrays) -> float: ...


def gate(model: WeightModel) -> FusionRule:
    """Mixture whose small-model weight `model` predicts at every step."""

    def combine(le, lc, edge, cloud):
        w = model.mixing_weight(edge, cloud)
        return _log_mix(le, lc, w), w

    return FusionRule("gate", combine, mixture=True)


mean = FusionRule("mean", _mix(0.5), mixture=True)
maximum = FusionRule("max", _max, mixture=False)


def make_rule(
    name: str, *, alpha: float = 0.5, gate_model: WeightModel | None = None
) -> FusionRule:
    """The serving rule named `name`; ``weighted`` takes `alpha`, ``gate`` a weight model."""
    if name == "mean":
        return mean
    if name == "max":
        return maximum
    if name == "weighted":
        return weighted(alpha)
    if name == "gate":
        if gate_model is None:
            raise ValueError("fusion rule 'gate' needs a trained gate")
        return gate(gate_model)
    raise ValueError(f"unknown fusion rule {name!r}; choose one of {', '.join(FUSION_RULE_NAMES)}")


# --- applying a rule ------------------------------------------------------------------


def candidates(edge: Side, cloud: TopKArrays, edge_k: int | None, extra_ids=()) -> np.ndarray:
    """Union of the edge's top-k (k = the cloud's k by default) and the cloud's top-k."""
    k = edge_k or max(len(cloud.token_ids), 1)
    ids = np.concatenate(
        [side_top(edge, k).token_ids, cloud.token_ids, np.asarray(extra_ids, dtype=np.int64)]
    )
    return np.unique(ids)


def fuse(
    rule: FusionRule,
    edge: Side,
    cloud: TopKLike | TopKArrays,
    *,
    edge_k: int | None = None,
    extra_ids: Sequence[int] = (),
) -> Fused:
    """Fused log-probs over the candidate set, normalized over it (for decoding)."""
    vocab = len(edge) if isinstance(edge, np.ndarray) else edge.vocab_size
    cloud = as_topk(cloud, vocab)
    ids = candidates(edge, cloud, edge_k, extra_ids)
    scores, w = rule.combine(side_logprobs(edge, ids), side_logprobs(cloud, ids), edge, cloud)
    finite = np.isfinite(scores)
    if not finite.any():
        raise ValueError("fusion produced no finite score")
    z = np.logaddexp.reduce(scores[finite])
    return Fused(ids, scores - z, w)


def fused_logprob(
    rule: FusionRule, edge: Side, cloud: TopKLike | TopKArrays, token_ids: Sequence[int]
) -> np.ndarray:
    """Fused log-probs of `token_ids`, normalized over the FULL vocabulary (evaluation)."""
    vocab = len(edge) if isinstance(edge, np.ndarray) else edge.vocab_size
    cloud = as_topk(cloud, vocab)
    ids = np.asarray(token_ids, dtype=np.int64)
    scores, _ = rule.combine(side_logprobs(edge, ids), side_logprobs(cloud, ids), edge, cloud)
    if rule.mixture:
        return scores
    full, _ = rule.combine(side_full(edge), side_full(cloud), edge, cloud)
    return scores - np.logaddexp.reduce(full)
