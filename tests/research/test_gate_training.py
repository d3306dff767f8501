"""Training the gate: what it learns, determinism, the file it writes."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.collab.features import FEATURES, N_FEATURES
from edge_agent.collab.gate import Gate
from research.gate_training import mixture_nll, save_gate, train_gate


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
    gate, stats = train_gate(x, t, groups=groups, epochs=300)
    fixed = float(mixture_nll(np.full(len(x), 0.5), t[:, 0], t[:, 1]).mean())
    assert stats.val_nll is not None and stats.val_nll < fixed - 0.3
    w = gate.weight(x)
    confident = x[:, FEATURES.index("edge_entropy")] < 0
    assert w[confident].mean() > 0.8 and w[~confident].mean() < 0.2
    assert gate.n_params < 1000


def test_training_is_deterministic_by_seed():
    x, t, groups = _data(600)
    a, _ = train_gate(x, t, groups=groups, epochs=30, seed=3)
    b, _ = train_gate(x, t, groups=groups, epochs=30, seed=3)
    assert np.array_equal(a.w1, b.w1)


def test_a_saved_gate_loads_on_the_edge(tmp_path):
    x, t, groups = _data(600)
    gate, _ = train_gate(x, t, groups=groups, epochs=20)
    path = save_gate(gate, tmp_path / "sub" / "gate.json")
    loaded = Gate.load(path)
    assert np.allclose(loaded.weight(x), gate.weight(x))
    assert loaded.meta["rows"] == 600
    assert not list(path.parent.glob("*.tmp"))


def test_training_rejects_bad_shapes():
    with pytest.raises(ValueError, match="features must be"):
        train_gate(np.zeros((5, 3)), np.zeros((5, 2)))
