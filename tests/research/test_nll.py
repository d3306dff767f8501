"""Teacher-forced NLL evaluation and gate training from a CoGenesis-format dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_agent.collab.gate import Gate
from edge_agent.store import DatasetFormatError
from research.dataset import DatasetTask
from research.gate_training import train_gate_from_dataset
from research.nll import evaluate_nll
from research.rules import FIXED_RULE_NAMES
from research.teacher_forcing import collect, extract_task
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
    """Short prompts, so the toy model's context stays small."""

    def build(task: DatasetTask):
        ctx = task.context
        private = f"{ctx.fields}{ctx.history}{task.instruction}"
        return model.tokenize(private), task.instruction.split(": ")[0]

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
    assert set(got.rule_lp) == set(FIXED_RULE_NAMES)


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
    assert set(report.nll) == set(FIXED_RULE_NAMES) | {"gate"}
    assert all(np.isfinite(v) for v in report.nll.values())
    # Jensen: the mean of probabilities never loses to the average of the two NLLs.
    assert report.nll["mean"] <= 0.5 * (report.nll["edge"] + report.nll["cloud"]) + 1e-9
    saved = json.loads(out.read_text())
    assert saved["nll"] == report.nll and len(saved["per_task"]) == 5
    assert [t["tid"] for t in saved["per_task"]] == [f"t{i}" for i in range(5)]
    assert "NLL/token" in lines[0] + lines[1]


def test_the_default_prompts_are_the_edge_prompts_of_the_item(dataset):
    model, cloud = ToyModel(n_ctx=100_000), ToyCloud()
    tasks, skipped = collect(dataset, model, cloud, max_tasks=1, progress=False, top_k=5)
    assert len(tasks) == 1 and skipped == []
    opened = cloud.requests[0]
    # The public prompt is the rendered title only; the private one stays on the device.
    assert opened.prompt_token_ids == model.tokenize(
        model.render_chat(
            [
                {"role": "system", "content": "You are a helpful writing assistant."},
                {"role": "user", "content": "Write note 0"},
            ]
        )
    )


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
    assert report.val_nll is not None and set(report.baseline_val_nll) == set(FIXED_RULE_NAMES)


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
    assert not (tmp_path / "x.json").exists()


def test_an_item_without_a_reference_is_skipped_with_its_reason(tmp_path):
    items = [_record(0), _record(1)]
    del items[1]["conversations"][1]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(items))
    model = ToyModel()
    tasks, skipped = collect(path, model, ToyCloud(), _build(model), progress=False, top_k=5)
    assert [t.tid for t in tasks] == ["t0"]
    assert skipped == [
        {"tid": "t1", "reason": "ValueError: the item has no reference answer (assistant turn)"}
    ]


def test_a_malformed_dataset_fails_whole_before_anything_is_sent(tmp_path):
    items = [_record(0), _record(1)]
    items[1]["additional_profile"] = "Age: 40\nno label here"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(items))
    cloud = ToyCloud()
    with pytest.raises(DatasetFormatError, match="item 1") as caught:
        collect(path, ToyModel(), cloud, progress=False)
    assert "additional_profile line 2" in str(caught.value)
    assert cloud.requests == []
