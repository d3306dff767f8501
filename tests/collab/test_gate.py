"""The learned gate: training, files, and its use as a fusion rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_agent.collab.fusion import fuse, fused_logprob, make_rule, topk_of
from edge_agent.collab.gate import (
    FEATURES,
    N_FEATURES,
    Gate,
    GateFileError,
    gate_features,
    mixture_nll,
)
from shared_protocol import TopK


def _data(n: int = 3000, seed: int = 0):
    """Rows where the edge is right when it is confident and the cloud otherwise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    confident = x[:, FEATURES.index("edge_entropy")] < 0
    edge_lp = np.where(confident, -0.3, -4.0) + rng.normal(0, 0.1, n)
    cloud_lp = np.where(confident, -4.0, -0.3) + rng.normal(0, 0.1, n)
    groups = np.arange(n) // 50
    return x, np.stack([edge_lp, cloud_lp], axis=1), groups


def test_training_learns_when_to_trust_the_small_model():
    x, t, groups = _data()
    gate, stats = Gate.train(x, t, groups=groups, epochs=300)
    fixed = float(mixture_nll(np.full(len(x), 0.5), t[:, 0], t[:, 1]).mean())
    assert stats.val_nll is not None and stats.val_nll < fixed - 0.3
    w = gate.weight(x)
    confident = x[:, FEATURES.index("edge_entropy")] < 0
    assert w[confident].mean() > 0.8 and w[~confident].mean() < 0.2
    assert gate.n_params < 1000


def test_training_is_deterministic_by_seed():
    x, t, groups = _data(600)
    a, _ = Gate.train(x, t, groups=groups, epochs=30, seed=3)
    b, _ = Gate.train(x, t, groups=groups, epochs=30, seed=3)
    assert np.array_equal(a.w1, b.w1)


def test_save_and_load_round_trip(tmp_path):
    x, t, groups = _data(600)
    gate, _ = Gate.train(x, t, groups=groups, epochs=20)
    path = gate.save(tmp_path / "gate.json")
    loaded = Gate.load(path)
    assert np.allclose(loaded.weight(x), gate.weight(x))
    assert loaded.meta["rows"] == 600


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{not json", "not JSON"),
        (json.dumps({"format": "something-else"}), "not a gate file"),
        (json.dumps({"format": "cogenesis-gate", "version": 99}), "version 99"),
        (
            json.dumps({"format": "cogenesis-gate", "version": 1, "features": ["a"]}),
            "different features",
        ),
        ("shape", "inconsistent shapes"),
        ("nan", "not all finite"),
        ("missing", "malformed"),
    ],
)
def test_bad_gate_files_fail_with_a_clear_error(tmp_path, content, message):
    path = tmp_path / "gate.json"
    good = Gate.train(*_data(200)[:2], epochs=2)[0].to_dict()
    if content == "shape":
        good["w2"] = good["w2"][:-1]
        content = json.dumps(good)
    elif content == "nan":
        good["b2"] = float("nan")
        content = json.dumps(good)
    elif content == "missing":
        del good["w1"]
        content = json.dumps(good)
    if content is not None:
        path.write_text(content)
    with pytest.raises(GateFileError, match=message):
        Gate.load(path)


def test_features_and_the_gate_rule(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=500) * 3
    edge = (x - np.logaddexp.reduce(x)).astype(np.float32)
    top = topk_of(edge, 10)
    cloud = TopK(
        token_ids=top.token_ids[::-1].tolist(), logprobs=sorted(top.logprobs - 1, reverse=True)
    )
    feats = gate_features(edge, top)
    assert feats.shape == (N_FEATURES,) and np.isfinite(feats).all()
    assert feats[FEATURES.index("agree_top1")] == 1.0
    gate = Gate.train(*_data(300)[:2], epochs=5)[0]
    rule = make_rule("gate", gate_model=gate)
    out = fuse(rule, edge, cloud)
    assert 0.0 <= out.weight <= 1.0
    assert np.isclose(np.exp(out.logprobs).sum(), 1.0)
    full = fused_logprob(rule, edge, cloud, np.arange(500))
    assert np.isclose(np.exp(full).sum(), 1.0, atol=1e-6)


def test_training_rejects_bad_shapes():
    with pytest.raises(ValueError):
        Gate.train(np.zeros((5, 3)), np.zeros((5, 2)))
