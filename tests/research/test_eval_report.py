"""The report's arithmetic and rendering: bootstrap intervals, missing ratings kept
apart from scores, one Markdown row per mode, and a chart."""

from __future__ import annotations

import json
from pathlib import Path

from research.evaluate.harness import EvalData, answer_key, rating_key
from research.evaluate.report import write_report
from research.evaluate.stats import mean_ci
from research.judge import RUBRICS


def test_interval_brackets_the_mean_and_narrows_with_more_data() -> None:
    few = mean_ci([6, 8, 7, 9, 5])
    many = mean_ci([6, 8, 7, 9, 5] * 20)
    assert few.mean == many.mean == 7.0
    assert few.low < 7.0 < few.high and many.low < 7.0 < many.high
    assert (many.high - many.low) < (few.high - few.low)
    assert mean_ci([6, 8, 7, 9, 5]) == few  # seeded


def test_missing_ratings_are_counted_not_scored() -> None:
    e = mean_ci([None, 4, None, 6])
    assert (e.mean, e.n, e.missing) == (5.0, 2, 2)
    assert mean_ci([None, None]).mean is None and mean_ci([None, None]).missing == 2
    one = mean_ci([3])
    assert one.mean == 3 and one.low is None


def _data() -> EvalData:
    records = [{"tid": f"t{i}", "conversations": [{}, {}]} for i in range(4)]
    answers, ratings = {}, {}
    for i, record in enumerate(records):
        for mode, leak in (("local", 0.0), ("cloud-no-context", 0.5)):
            answers[answer_key(record["tid"], mode)] = {
                "text": "x",
                "cost": {"cloud_calls": 0 if mode == "local" else 1, "bytes_up": 100 * i},
                "leakage": {"leak_fraction": leak, "leaked": ["name: A"] if leak else []},
            }
            for rubric in RUBRICS:
                score = None if (mode == "local" and rubric == "personal") else 5 + i % 3
                ratings[rating_key(record["tid"], mode, rubric)] = {"score": score}
    nll = {r["tid"]: {"local": 2.0, "cloud-no-context": 3.0} for r in records}
    return EvalData(records, answers, nll, ratings, [])


def test_report_has_a_row_per_mode_and_draws_the_chart(tmp_path: Path) -> None:
    meta = {
        "dataset": "d.json",
        "tasks": 4,
        "max_tokens": 8,
        "nll_tokens": 8,
        "judge_url": "u",
        "judge_model": "m",
        "cloud_model": "c",
        "wall_s": 1.0,
    }
    table = write_report(_data(), ("local", "cloud-no-context"), tmp_path, meta)
    assert table["local"]["personal"]["missing"] == 4 and table["local"]["personal"]["n"] == 0
    assert table["cloud-no-context"]["overall"]["mean"] == 5.75  # 5, 6, 7, 5
    assert table["cloud-no-context"]["leak_fraction"] == 0.5
    assert table["cloud-no-context"]["answers_with_a_leak"] == 4
    assert table["local"]["nll"] == 2.0 and table["cloud-no-context"]["bytes_up"] == 150
    markdown = (tmp_path / "report.md").read_text()
    local_row = next(line for line in markdown.splitlines() if line.startswith("| local |"))
    assert "missing (4)" in local_row and "5.75 [" in local_row
    assert json.loads((tmp_path / "report.json").read_text())["table"] == table
    assert (tmp_path / "scores.png").stat().st_size > 5000
