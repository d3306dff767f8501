"""The gate's input: 12 summary features of the two next-token distributions at a step.

Shared by the edge, which computes them at every fused step of a gated answer, and by
gate training (research), which computes them at every teacher-forced position. A gate
file names the features it was trained on, so changing this list means retraining.
"""

from __future__ import annotations

import math

import numpy as np

from edge_agent.collab.fusion import Side, TopKArrays, rest_logprob, side_logprobs, side_top

FEATURES = (
    "edge_top1_logprob",
    "edge_margin",  # top-1 minus top-2 log-prob
    "edge_entropy",
    "edge_topk_mass",  # probability mass in the edge's top-k (k = the cloud's k)
    "cloud_top1_logprob",
    "cloud_margin",
    "cloud_entropy",  # over top-k plus the uniform remaining mass
    "cloud_rest_logmass",  # log(1 - sum of the cloud's top-k probabilities)
    "agree_top1",  # 1 when both sides' top-1 tokens are the same
    "cloud_logprob_of_edge_top1",
    "edge_logprob_of_cloud_top1",
    "topk_overlap",  # |top-k(edge) & top-k(cloud)| / k
)
N_FEATURES = len(FEATURES)
LOGPROB_FLOOR = -30.0


def _entropy_full(lp: np.ndarray) -> float:
    p = np.exp(lp.astype(np.float64))
    return float(-(p * np.where(p > 0, lp, 0.0)).sum())


def _entropy_topk(top: TopKArrays) -> float:
    p = np.exp(top.logprobs)
    h = float(-(p * top.logprobs).sum())
    rest = max(1.0 - float(p.sum()), 0.0)
    if rest > 0:
        h -= rest * rest_logprob(top)
    return h


def gate_features(edge: Side, cloud: TopKArrays) -> np.ndarray:
    """The features at one position: edge log-probs (full or top-k), cloud top-k."""
    k = max(len(cloud.token_ids), 2)
    etop = side_top(edge, k)
    c_ids, c_lps = cloud.token_ids, cloud.logprobs
    e1 = float(etop.logprobs[0])
    e_margin = e1 - float(etop.logprobs[1]) if len(etop.logprobs) > 1 else 0.0
    if isinstance(edge, np.ndarray):
        e_entropy = _entropy_full(edge)
    else:
        e_entropy = _entropy_topk(edge)
    e_mass = float(np.exp(etop.logprobs).sum())
    c1 = float(c_lps[0]) if len(c_lps) else LOGPROB_FLOOR
    c_margin = c1 - float(c_lps[1]) if len(c_lps) > 1 else 0.0
    c_rest = max(1.0 - float(np.exp(c_lps).sum()), 1e-9)
    agree = float(len(c_ids) > 0 and int(c_ids[0]) == int(etop.token_ids[0]))
    c_of_e1 = float(side_logprobs(cloud, etop.token_ids[:1])[0])
    e_of_c1 = float(side_logprobs(edge, c_ids[:1])[0]) if len(c_ids) else LOGPROB_FLOOR
    overlap = len(np.intersect1d(etop.token_ids, c_ids)) / k
    x = np.array(
        [
            e1,
            e_margin,
            e_entropy,
            e_mass,
            c1,
            c_margin,
            _entropy_topk(cloud),
            math.log(c_rest),
            agree,
            c_of_e1,
            e_of_c1,
            overlap,
        ],
        dtype=np.float64,
    )
    return np.maximum(x, LOGPROB_FLOOR)
