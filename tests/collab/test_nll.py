"""Teacher-forced NLL evaluation and gate training from a CoGenesis-format dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_agent.collab.gate import Gate, train_gate_from_dataset
from edge_agent.collab.nll import FIXED_RULES, evaluate_nll, extract_task, record_context
from tests.collab.toys import ToyCloud, ToyModel, _logits, log_softmax


def _record(i: int) -> dict:
    return {
        "tid": f"t{i}",
        "conversations": [
            {"from": "user", "value": f"Write note {i}: about things number {i}"},
            {"from": "assistant", "value": "Some reference answer text " * (2 + i % 3)},
        ],
        "profile": [{"title": "Old post", "text": f"history {i}"}],
        "additional_profile": f"Name: User {i}\nAge: {30 + i}",
    }


def _build(model: ToyModel):
    """A local stand-in for the lead's prompt builder."""

    def build(record):
        ctx = record_context(record)
        private = f"{ctx.fields}{ctx.history}{record['conversations'][0]['value']}"
        return model.tokenize(private), record["conversations"][0]["value"].split(": ")[0]

    return build


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([_record(i) for i in range(6)]))
    return path


def test_cloud_positions_across_draft_chunks_match_direct_scoring():
    model, cloud = ToyModel(), ToyCloud()
    targets = [(7 * i) % 60 + 1 for i in range(40)]  # spans three chunks of 16
    public = [3, 4, 5]
    got = extract_task(model, cloud, [9, 9, 9], public, targets, top_k=5)
    for i in (0, 15, 16, 17, 39):
        lp = log_softmax(_logits(public + targets[:i], 2, len(public)))
        order = np.lexsort((np.arange(len(lp)), -lp))[:5]
        if targets[i] in order:
            assert np.isclose(got.cloud_lp[i], lp[targets[i]], atol=1e-6)
    assert cloud.closed == ["s0"]
    assert got.features.shape == (40, 12)


def test_evaluate_nll_reports_every_rule_and_writes_json(dataset, tmp_path):
    model = ToyModel()
    out = tmp_path / "nll.json"
    lines: list[str] = []
    report = evaluate_nll(
        dataset,
        model,
        ToyCloud(),
        _build(model),
        max_tasks=5,
        progress=False,
        out_path=out,
        folds=3,
        top_k=5,
        echo=lines.append,
    )
    assert report.tasks == 5 and report.tokens > 50
    assert set(report.nll) == set(FIXED_RULES) | {"gate"}
    assert all(np.isfinite(v) for v in report.nll.values())
    # Jensen: the mean of probabilities never loses to the average of the two NLLs.
    assert report.nll["mean"] <= 0.5 * (report.nll["edge"] + report.nll["cloud"]) + 1e-9
    saved = json.loads(out.read_text())
    assert saved["nll"] == report.nll and len(saved["per_task"]) == 5
    assert "NLL/token" in lines[0] + lines[1]


def test_train_gate_from_dataset_saves_a_loadable_gate(dataset, tmp_path):
    model = ToyModel()
    report = train_gate_from_dataset(
        dataset,
        model,
        ToyCloud(),
        tmp_path / "g.json",
        6,
        False,
        build_prompts=_build(model),
        top_k=5,
    )
    gate = Gate.load(report.path)
    assert gate.meta["top_k"] == 5 and report.tasks == 6
    assert report.val_nll is not None and set(report.baseline_val_nll) == set(FIXED_RULES)


def test_a_failing_cloud_skips_tasks_instead_of_crashing(dataset, tmp_path):
    model = ToyModel()
    with pytest.raises(ValueError, match="no task"):
        evaluate_nll(
            dataset,
            model,
            ToyCloud(fail_after_steps=0),
            _build(model),
            2,
            False,
            out_path=tmp_path / "x.json",
            echo=None,
        )
