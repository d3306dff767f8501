"""The evaluation-only fusion rules and the fixed set that every evaluation scores."""

from __future__ import annotations

import numpy as np

from edge_agent.collab.fusion import FUSION_RULE_NAMES, fuse, fused_logprob, topk_of
from research.rules import (
    FIXED_RULE_NAMES,
    RESEARCH_RULE_NAMES,
    cloud_only,
    edge_only,
    logmean,
)
from shared_protocol import TopK

V = 1000


def _full(seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=V) * 3.0
    return (x - np.logaddexp.reduce(x)).astype(np.float32)


def _cloud(seed: int, k: int = 10) -> TopK:
    top = topk_of(_full(seed), k)
    return TopK(token_ids=top.token_ids.tolist(), logprobs=top.logprobs.tolist())


def test_research_names_extend_the_serving_names_without_overlap():
    assert not set(RESEARCH_RULE_NAMES) & set(FUSION_RULE_NAMES)
    assert {logmean.name, edge_only.name, cloud_only.name} == set(RESEARCH_RULE_NAMES)
    assert FIXED_RULE_NAMES == (
        "edge",
        "cloud",
        "mean",
        "max",
        "logmean",
        "weighted(0.25)",
        "weighted(0.75)",
    )


def test_logmean_is_the_renormalized_geometric_mean():
    edge, cloud = _full(1), _cloud(2)
    lp = fused_logprob(logmean, edge, cloud, np.arange(V))
    assert np.isclose(np.exp(lp).sum(), 1.0, atol=1e-6)
    t, u = cloud.token_ids[0], cloud.token_ids[1]
    ratio = np.sqrt(np.exp(edge[t] + cloud.logprobs[0]) / np.exp(edge[u] + cloud.logprobs[1]))
    assert np.isclose(np.exp(lp[t] - lp[u]), ratio)
    assert np.isclose(np.exp(fuse(logmean, edge, cloud).logprobs).sum(), 1.0)


def test_one_side_alone_is_that_side():
    edge, cloud = _full(3), _cloud(4)
    ids = np.arange(V)
    assert np.allclose(fused_logprob(edge_only, edge, cloud, ids), edge, atol=1e-6)
    on_cloud = fused_logprob(cloud_only, edge, cloud, cloud.token_ids)
    assert np.allclose(on_cloud, cloud.logprobs)
    assert fuse(cloud_only, edge, cloud).argmax() == cloud.token_ids[0]
