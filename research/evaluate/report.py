"""The report: one row per mode, shaped like the paper's Table 1.

``report.md`` (the table), ``report.json`` (the table plus every task's answers, ratings
and measurements) and ``scores.png`` (the judge's three scores with 95% intervals).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from research.evaluate.harness import EvalData, answer_key, rating_key
from research.evaluate.stats import Estimate, mean_ci
from research.files import write_text_atomic
from research.judge import RUBRIC_TITLES, RUBRICS

# The paper's rows, for the reader: the closest mode of this gateway to each.
PAPER_ROWS = {
    "cloud-with-context": "GPT-4 with context (8.85)",
    "cloud-no-context": "GPT-4 without context (6.10)",
    "local": "Qwen1.5-1.8B fine-tuned (8.08)",
    "cogenesis-sketch": "+ sketch (8.18)",
    "cogenesis-logits": "+ logits (8.28)",
}


def summarize(data: EvalData, modes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for mode in modes:
        tids = [r["tid"] for r in data.records if answer_key(r["tid"], mode) in data.answers]
        answers = [data.answers[answer_key(t, mode)] for t in tids]
        row: dict[str, Any] = {"answers": len(answers)}
        for rubric in RUBRICS:
            scores = [
                (data.ratings.get(rating_key(t, mode, rubric)) or {}).get("score") for t in tids
            ]
            row[rubric] = mean_ci(scores).as_json()
        row["nll"] = _mean([data.nll.get(t, {}).get(mode) for t in tids])
        row["leak_fraction"] = _mean([a["leakage"]["leak_fraction"] for a in answers])
        row["answers_with_a_leak"] = sum(bool(a["leakage"]["leaked"]) for a in answers)
        for key in ("bytes_up", "bytes_down", "cloud_calls", "seconds"):
            row[key] = _mean([a["cost"].get(key) for a in answers])
        row["degraded"] = sum(bool(a.get("degraded")) for a in answers)
        table[mode] = row
    return table


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _score_cell(value: dict[str, Any]) -> str:
    e = Estimate(**value)
    if e.mean is None:
        return f"missing ({e.missing})"
    cell = f"{e.mean:.2f}"
    if e.low is not None:
        cell += f" [{e.low:.2f}, {e.high:.2f}]"
    return cell + (f" ({e.missing} missing)" if e.missing else "")


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def markdown(table: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Evaluation report",
        "",
        f"Dataset `{meta['dataset']}`, {meta['tasks']} task(s); answers of at most "
        f"{meta['max_tokens']} tokens; judge `{meta['judge_model']}` at {meta['judge_url']}; "
        f"cloud `{meta['cloud_model']}`; reference NLL on the first {meta['nll_tokens']} "
        f"tokens; this invocation took {meta['wall_s']:.0f} s (a resumed run counts only "
        "its own part).",
        "",
        "Judge scores are 1-10 means with 95% bootstrap intervals; a rating the judge did "
        "not give is counted as missing, not as a score. Leakage: the mean fraction of a "
        "user's private items found in what the cloud could read. Cost: per answer.",
        "",
        "| mode | overall (with profile) | personalization | overall (no profile) | NLL/token "
        "| leakage | answers leaking | bytes up | cloud calls | seconds | paper's row |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, row in table.items():
        cells = [
            mode,
            *(_score_cell(row[rubric]) for rubric in RUBRICS),
            _num(row["nll"], "{:.3f}"),
            _num(None if row["leak_fraction"] is None else 100 * row["leak_fraction"], "{:.1f}%"),
            f"{row['answers_with_a_leak']}/{row['answers']}",
            _num(row["bytes_up"], "{:.0f}"),
            _num(row["cloud_calls"], "{:.1f}"),
            _num(row["seconds"], "{:.1f}"),
            PAPER_ROWS.get(mode, ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if meta.get("errors"):
        lines += ["", f"{len(meta['errors'])} errors; see report.json."]
    return "\n".join(lines) + "\n"


def plot(table: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    modes = list(table)
    width = 0.8 / len(RUBRICS)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(modes)), 4.0))
    for i, rubric in enumerate(RUBRICS):
        xs, heights, errors = [], [], [[], []]
        for j, mode in enumerate(modes):
            e = Estimate(**table[mode][rubric])
            x = j + (i - (len(RUBRICS) - 1) / 2) * width
            if e.mean is None:
                ax.text(x, 0.2, "no rating", ha="center", fontsize=7, rotation=90, color=f"C{i}")
                continue
            xs.append(x)
            heights.append(e.mean)
            errors[0].append(e.mean - (e.low if e.low is not None else e.mean))
            errors[1].append((e.high if e.high is not None else e.mean) - e.mean)
        ax.bar(
            xs, heights, width, yerr=errors, capsize=3, color=f"C{i}", label=RUBRIC_TITLES[rubric]
        )
    ax.set_xlim(-0.6, len(modes) - 0.4)
    ax.set_xticks(range(len(modes)), modes, rotation=15)
    ax.set_ylim(0, 10)
    ax.set_ylabel("judge score (1-10), 95% CI")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(data: EvalData, modes: tuple[str, ...], out: Path, meta: dict) -> dict:
    table = summarize(data, modes)
    meta = {**meta, "errors": data.errors}
    write_text_atomic(out / "report.md", markdown(table, meta))
    tasks = []
    for record in data.records:
        tid = record["tid"]
        per_mode = {}
        for mode in modes:
            answer = data.answers.get(answer_key(tid, mode))
            if answer is None:
                continue
            per_mode[mode] = {
                **answer,
                "nll": data.nll.get(tid, {}).get(mode),
                "ratings": {
                    r: (data.ratings.get(rating_key(tid, mode, r)) or {}).get("score")
                    for r in RUBRICS
                },
            }
        tasks.append({"tid": tid, "modes": per_mode})
    body = {"meta": meta, "table": table, "tasks": tasks}
    write_text_atomic(out / "report.json", json.dumps(body, indent=1, ensure_ascii=False))
    plot(table, out / "scores.png")
    return table
