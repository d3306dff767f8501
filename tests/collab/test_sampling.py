"""Greedy and seeded temperature / top-p sampling."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.collab.sampling import SamplingParams, UniformStream, pick


def _lp(seed: int, n: int = 5000) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=n) * 2
    return x - np.logaddexp.reduce(x)


def test_greedy_takes_the_argmax_and_breaks_ties_by_smaller_id():
    lp = np.log(np.array([0.1, 0.4, 0.4, 0.1]))
    assert pick(lp, SamplingParams()) == 1
    assert pick(lp[[2, 1]], SamplingParams(), token_ids=np.array([7, 9])) == 7


def test_same_seed_same_uniforms_and_tokens():
    a, b = UniformStream(42), UniformStream(42)
    assert [a.at(i) for i in range(10)] == [b.at(i) for i in range(10)]
    params = SamplingParams(temperature=0.8, top_p=0.9)
    lp = _lp(1)
    assert [pick(lp, params, a.at(i)) for i in range(10)] == [
        pick(lp, params, b.at(i)) for i in range(10)
    ]
    c = UniformStream(43)
    assert [c.at(i) for i in range(10)] != [a.at(i) for i in range(10)]


def test_uniforms_are_fixed_by_position_not_by_call_order():
    a, b = UniformStream(7), UniformStream(7)
    late = b.at(5)
    assert a.at(5) == late and a.at(2) == b.at(2)


def test_unseeded_streams_report_their_seed():
    s = UniformStream(None)
    assert UniformStream(s.seed).at(3) == s.at(3)


def test_sampling_follows_the_distribution():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    rng = UniformStream(0)
    draws = [pick(np.log(p), SamplingParams(1.0), rng.at(i)) for i in range(20000)]
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert np.allclose(freq, p, atol=0.015)


def test_top_p_keeps_the_smallest_nucleus():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    rng = UniformStream(1)
    draws = {pick(np.log(p), SamplingParams(1.0, top_p=0.75), rng.at(i)) for i in range(3000)}
    assert draws == {0, 1}


def test_temperature_sharpens():
    p = np.array([0.6, 0.4])
    rng = UniformStream(2)
    draws = [pick(np.log(p), SamplingParams(0.25), rng.at(i)) for i in range(5000)]
    expected = 0.6**4 / (0.6**4 + 0.4**4)
    assert abs(np.mean(np.array(draws) == 0) - expected) < 0.02


def test_partial_sort_fallback_matches_a_full_sort():
    lp = _lp(3, n=49152) / 10  # flat: the nucleus is far larger than the partial sort
    params = SamplingParams(1.0, top_p=0.99)
    for u in (0.0, 0.3, 0.97, 0.999999):
        got = pick(lp, params, u)
        order = np.lexsort((np.arange(len(lp)), -lp))
        cum = np.cumsum(np.exp(lp[order]))
        cut = np.searchsorted(cum, 0.99 * cum[-1])
        j = min(np.searchsorted(cum, u * cum[cut], side="right"), cut)
        assert got == order[j]


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError):
        SamplingParams(top_p=0)
