"""`cogenesis eval run` end to end on 3 tasks: the real cloud (SmolLM2) serves the modes
and is also the judge; the edge runs in process on its own store. Uses the released dev
split when /work/shared has it, else a tiny dataset written here."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from research.evaluate.cli import main as eval_run
from research.jsonl import JsonlTable

pytestmark = pytest.mark.slow  # real models, real server

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT.parent.parent / "shared" / "data" / "cogenesis_context_aware_dev.json"
EXAMPLE = ROOT / "cogenesis" / "examples" / "example_profile.json"
MODES = "local,cogenesis-sketch,cogenesis-logits,cloud-no-context,cloud-with-context"


def three_tasks(tmp_path: Path) -> Path:
    if DEV.is_file():
        records = json.loads(DEV.read_text(encoding="utf-8"))[:3]
        for record in records:  # shorter prompts keep the test fast; the path is the same
            record["profile"] = record["profile"][:1]
            record["profile"][0]["text"] = record["profile"][0]["text"][:400]
    else:  # the example person with three tasks
        base = json.loads(EXAMPLE.read_text(encoding="utf-8"))[0]
        records = []
        for i, task in enumerate(
            ["Write a Note to My Sister", "Draft a Club Newsletter", "Write a Talk on Bees"]
        ):
            record = copy.deepcopy(base)
            record["tid"] = f"tiny_{i}"
            record["conversations"][0]["value"] = f"{task}: {base['additional_tasks'][0]}"
            records.append(record)
    path = tmp_path / "three.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _argv(cloud, dataset: Path, out: Path) -> list[str]:
    return [
        str(dataset), "--modes", MODES, "--allow-context-to-cloud",
        "--judge-url", cloud.url, "--judge-model", cloud.model,
        "--cloud-url", cloud.url, "--out", str(out),
        "--max-tokens", "6", "--nll-tokens", "6", "--judge-max-tokens", "8",
        "--judge-attempts", "1",
    ]  # fmt: skip


def test_eval_run_reports_every_mode_with_judge_nll_leakage_and_cost(
    research_cloud, cloud_token, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dataset, out = three_tasks(tmp_path), tmp_path / "report"
    assert eval_run(_argv(research_cloud, dataset, out)) == 0
    captured = capsys.readouterr()
    assert "WARNING: cloud-with-context sends" in captured.err
    modes = MODES.split(",")

    report = json.loads((out / "report.json").read_text())
    table = report["table"]
    assert list(table) == modes and all(row["answers"] == 3 for row in table.values())
    markdown = (out / "report.md").read_text()
    assert all(f"| {mode} |" in markdown for mode in modes)
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert table["local"]["cloud_calls"] == 0 and table["local"]["bytes_up"] == 0
    assert table["local"]["leak_fraction"] == 0
    for mode in ("cogenesis-sketch", "cogenesis-logits", "cloud-no-context"):
        assert table[mode]["cloud_calls"] >= 1 and table[mode]["bytes_up"] > 0
    # The upper bound sends the profile: the user's name is readable in every request.
    for task in report["tasks"]:
        leaked = task["modes"]["cloud-with-context"]["leakage"]["leaked"]
        assert any(item.startswith("name:") for item in leaked)
    assert table["cloud-with-context"]["leak_fraction"] > table["cloud-no-context"]["leak_fraction"]
    for mode in modes:
        assert table[mode]["nll"] is not None and math.isfinite(table[mode]["nll"])

    # Every judge reply is kept; a rating is a number in 1..10 or missing, and missing
    # ones come with the judge's replies that held none.
    ratings = dict(JsonlTable(out / "ratings.jsonl").items())
    assert len(ratings) == 3 * len(modes) * 3
    cached = JsonlTable(out / "judge_cache.jsonl")
    replies = {value["text"] for _, value in cached.items()}
    assert all(raw in replies for r in ratings.values() for raw in r["raw"])
    # Equal answers make equal judge requests: asked once, from the cache after.
    assert 0 < len(cached) <= sum(len(r["raw"]) for r in ratings.values())
    for rating in ratings.values():
        assert rating["score"] is None or 1 <= rating["score"] <= 10
        assert len(rating["raw"]) == rating["attempts"]
    for row in table.values():
        for rubric in ("overall", "personal", "overall_blind"):
            assert row[rubric]["n"] + row[rubric]["missing"] == 3

    # A rerun continues from the checkpoints: no answer, NLL or judge request again.
    answers_before = (out / "answers.jsonl").read_text()
    assert eval_run(_argv(research_cloud, dataset, out)) == 0
    assert (out / "answers.jsonl").read_text() == answers_before
    assert len(JsonlTable(out / "judge_cache.jsonl")) == len(cached)
    assert json.loads((out / "report.json").read_text())["table"] == table


def test_cloud_with_context_needs_the_explicit_flag(
    research_cloud, cloud_token, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = _argv(research_cloud, three_tasks(tmp_path), tmp_path / "out")
    argv.remove("--allow-context-to-cloud")
    assert eval_run(argv) == 2
    err = capsys.readouterr().err
    assert "--allow-context-to-cloud" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--modes", "local,gpt5"], "unknown mode"),
        (["--tasks", "0"], "--tasks"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    research_cloud, cloud_token, tmp_path: Path, capsys: pytest.CaptureFixture, change, message
) -> None:
    argv = _argv(research_cloud, three_tasks(tmp_path), tmp_path / "out")
    argv.remove("--allow-context-to-cloud")
    i = argv.index(change[0]) if change[0] in argv else len(argv)
    argv[i : i + 2] = change
    assert eval_run(argv) == 2
    assert message in capsys.readouterr().err


def test_a_malformed_dataset_is_refused_before_anything_runs(
    research_cloud, cloud_token, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"tid": "x", "conversations": []}]))
    assert eval_run(_argv(research_cloud, bad, tmp_path / "out")) == 2
    assert "profile" in capsys.readouterr().err
