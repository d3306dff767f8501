"""Fusion rules: normalization and the defining properties of each rule."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.collab import fusion
from edge_agent.collab.fusion import TopKArrays, fuse, fused_logprob, make_rule, topk_of
from shared_protocol import TopK

V = 1000


def _full(seed: int, scale: float = 3.0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=V) * scale
    x = x - x.max()
    return (x - np.log(np.exp(x).sum())).astype(np.float32)


def _cloud(seed: int, k: int = 10) -> TopK:
    top = topk_of(_full(seed), k)
    return TopK(token_ids=top.token_ids.tolist(), logprobs=top.logprobs.tolist())


@pytest.mark.parametrize("name", ["mean", "max", "weighted"])
def test_every_rule_is_normalized_over_its_candidates(name):
    rule = make_rule(name, alpha=0.3)
    out = fuse(rule, _full(1), _cloud(2))
    assert np.isclose(np.exp(out.logprobs).sum(), 1.0)
    assert len(np.unique(out.token_ids)) == len(out.token_ids)


@pytest.mark.parametrize("name", ["mean", "max", "weighted"])
def test_full_vocabulary_normalization_sums_to_one(name):
    rule = make_rule(name, alpha=0.7)
    lp = fused_logprob(rule, _full(3), _cloud(4), np.arange(V))
    assert np.isclose(np.exp(lp).sum(), 1.0, atol=1e-6)


def test_candidates_are_the_union_of_both_top_k():
    edge, cloud = _full(5), _cloud(6, k=8)
    out = fuse(fusion.mean, edge, cloud)
    expected = set(topk_of(edge, 8).token_ids.tolist()) | set(cloud.token_ids)
    assert set(out.token_ids.tolist()) == expected


def test_mean_is_the_average_of_probabilities():
    edge, cloud = _full(7), _cloud(8)
    t = cloud.token_ids[0]
    got = fused_logprob(fusion.mean, edge, cloud, [t])[0]
    assert np.isclose(np.exp(got), 0.5 * np.exp(edge[t]) + 0.5 * np.exp(cloud.logprobs[0]))


def test_mean_uses_the_remaining_mass_rule_outside_the_cloud_top_k():
    edge, cloud = _full(9), _cloud(10)
    outside = next(i for i in range(V) if i not in cloud.token_ids)
    rest = 1 - np.exp(cloud.logprobs).sum()
    got = np.exp(fused_logprob(fusion.mean, edge, cloud, [outside])[0])
    assert np.isclose(got, 0.5 * np.exp(edge[outside]) + 0.5 * rest / (V - 10))


def test_weighted_interpolates_between_the_two_sides():
    edge, cloud = _full(11), _cloud(12)
    a = fuse(make_rule("weighted", alpha=1.0), edge, cloud)
    ids = a.token_ids
    expected = edge[ids] - np.logaddexp.reduce(edge[ids].astype(np.float64))
    assert np.allclose(a.logprobs, expected)
    assert fuse(make_rule("weighted", alpha=0.0), edge, cloud).argmax() == cloud.token_ids[0]
    half = fuse(make_rule("weighted", alpha=0.5), edge, cloud)
    assert np.allclose(half.logprobs, fuse(fusion.mean, edge, cloud).logprobs)


def test_max_takes_the_larger_probability_then_renormalizes():
    edge, cloud = _full(13), _cloud(14)
    out = fuse(fusion.maximum, edge, cloud)
    pe = np.exp(fusion.side_logprobs(edge, out.token_ids))
    pc = np.exp(fusion.side_logprobs(fusion.as_topk(cloud, V), out.token_ids))
    raw = np.maximum(pe, pc)
    assert np.allclose(np.exp(out.logprobs), raw / raw.sum())


def test_when_both_sides_agree_every_rule_keeps_the_shared_top_token():
    edge = _full(15, scale=5.0)
    top = topk_of(edge, 10)
    cloud = TopK(token_ids=top.token_ids.tolist(), logprobs=top.logprobs.tolist())
    for name in ["mean", "max", "weighted"]:
        assert fuse(make_rule(name, alpha=0.2), edge, cloud).argmax() == int(top.token_ids[0])


def test_greedy_choice_of_the_union_equals_the_full_vocabulary_argmax():
    for seed in range(20):
        edge, cloud = _full(100 + seed), _cloud(200 + seed)
        for name in ["mean", "max", "weighted"]:
            rule = make_rule(name, alpha=0.4)
            full = fused_logprob(rule, edge, cloud, np.arange(V))
            assert fuse(rule, edge, cloud).argmax() == int(np.argmax(full))


def test_an_edge_given_as_top_k_works_like_the_cloud():
    edge = topk_of(_full(16), 10)
    out = fuse(fusion.mean, edge, _cloud(17))
    assert np.isclose(np.exp(out.logprobs).sum(), 1.0)
    assert isinstance(edge, TopKArrays)


def test_a_cloud_top_k_summing_to_one_keeps_a_tiny_positive_rest():
    cloud = TopK(token_ids=[1, 2], logprobs=[np.log(0.5), np.log(0.5)])
    lp = fused_logprob(fusion.weighted(0.0), _full(18), cloud, [3])[0]
    assert np.isfinite(lp) and lp < -20


def test_unknown_rules_and_missing_gates_fail_clearly():
    for name in ("median", "logmean"):  # logmean is a research rule, never served
        with pytest.raises(ValueError, match="unknown fusion rule.*mean, max, weighted, gate"):
            make_rule(name)
    with pytest.raises(ValueError, match="needs a trained gate"):
        make_rule("gate")
    with pytest.raises(ValueError, match="alpha"):
        make_rule("weighted", alpha=1.5)


def test_out_of_range_cloud_ids_are_rejected():
    with pytest.raises(ValueError, match="out of range"):
        fuse(fusion.mean, _full(19), TopK(token_ids=[V + 5], logprobs=[-0.1]))


class _ConstantWeight:
    """A `WeightModel` whose weight is fixed, to check the gate rule's plumbing."""

    def __init__(self, w: float) -> None:
        self.w = w

    def mixing_weight(self, edge, cloud) -> float:
        return self.w


def test_the_gate_rule_mixes_with_the_weight_its_model_predicts():
    edge, cloud = _full(20), _cloud(21)
    out = fuse(make_rule("gate", gate_model=_ConstantWeight(0.3)), edge, cloud)
    assert out.weight == 0.3
    assert np.allclose(out.logprobs, fuse(fusion.weighted(0.3), edge, cloud).logprobs)


def test_rule_names_are_defined_once_and_every_name_makes_a_rule():
    from edge_agent.openai_types import CogenesisOptions
    from edge_agent.settings import EdgeSettings

    assert fusion.FUSION_RULE_NAMES == ("mean", "max", "weighted", "gate")
    for name in fusion.FUSION_RULE_NAMES:
        assert make_rule(name, gate_model=_ConstantWeight(0.5)).name.startswith(name)
        assert EdgeSettings(fusion=name).fusion == name
        assert CogenesisOptions(fusion=name).fusion == name
    with pytest.raises(ValueError, match="fusion"):
        EdgeSettings(fusion="logmean")
    with pytest.raises(ValueError, match="fusion"):
        CogenesisOptions(fusion="logmean")
