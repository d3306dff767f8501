"""The learned gate as the edge serves it: gate files, features, and the gate rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_agent.collab.features import FEATURES, N_FEATURES, gate_features
from edge_agent.collab.fusion import fuse, fused_logprob, make_rule, topk_of
from edge_agent.collab.gate import Gate, GateFileError
from shared_protocol import TopK


def _gate(seed: int = 0, hidden: int = 8) -> Gate:
    """A gate with random parameters (training is research's job, tested there)."""
    rng = np.random.default_rng(seed)
    return Gate(
        rng.normal(size=(N_FEATURES, hidden)),
        rng.normal(size=hidden),
        rng.normal(size=hidden),
        0.1,
        rng.normal(size=N_FEATURES),
        rng.uniform(0.5, 2.0, size=N_FEATURES),
        meta={"rows": 7},
    )


def test_a_gate_file_loads_to_the_same_weights(tmp_path):
    gate = _gate()
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(gate.to_dict()))
    loaded = Gate.load(path)
    x = np.random.default_rng(1).normal(size=(50, N_FEATURES))
    assert np.allclose(loaded.weight(x), gate.weight(x))
    assert loaded.meta == {"rows": 7}


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
        ("scale", "scales must be positive"),
        ("missing", "malformed"),
    ],
)
def test_bad_gate_files_fail_with_a_clear_error(tmp_path, content, message):
    path = tmp_path / "gate.json"
    good = _gate().to_dict()
    if content == "shape":
        good["w2"] = good["w2"][:-1]
    elif content == "nan":
        good["b2"] = float("nan")
    elif content == "scale":
        good["std"][0] = 0.0
    elif content == "missing":
        del good["w1"]
    if content in ("shape", "nan", "scale", "missing"):
        content = json.dumps(good)
    if content is not None:
        path.write_text(content)
    with pytest.raises(GateFileError, match=message):
        Gate.load(path)


def test_features_and_the_gate_rule():
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
    gate = _gate(3)
    assert np.isclose(gate.mixing_weight(edge, top), gate.weight(feats)[0])
    rule = make_rule("gate", gate_model=gate)
    out = fuse(rule, edge, cloud)
    assert 0.0 <= out.weight <= 1.0
    assert np.isclose(np.exp(out.logprobs).sum(), 1.0)
    full = fused_logprob(rule, edge, cloud, np.arange(500))
    assert np.isclose(np.exp(full).sum(), 1.0, atol=1e-6)


def test_the_gate_rejects_the_wrong_number_of_features():
    with pytest.raises(ValueError, match="expected 12 features"):
        _gate().weight(np.zeros((2, 3)))
