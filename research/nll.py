"""Teacher-forced NLL of reference answers under each side and each fusion rule.

Every fixed rule (research/rules.py) is scored on the same teacher-forced positions
(research/teacher_forcing.py); the learned gate is scored k-fold by task, so it never
sees the tasks it is scored on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from research.dataset import BuildPrompts
from research.files import write_text_atomic
from research.gate_training import kfold_gate_logprobs
from research.rules import FIXED_RULE_NAMES
from research.teacher_forcing import DEFAULT_TOP_K, CloudSessions, ScoringModel, collect


@dataclass
class NllReport:
    dataset: str
    tasks: int
    tokens: int
    top_k: int
    folds: int
    nll: dict[str, float]  # rule -> mean NLL per token (nats)
    ppl: dict[str, float]
    per_task: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    json_path: str | None = None

    def table(self) -> str:
        lines = [
            f"teacher-forced NLL on {self.tasks} tasks, {self.tokens} tokens "
            f"(cloud top-{self.top_k}; gate {self.folds}-fold by task)",
            f"{'rule':<16}{'NLL/token':>12}{'perplexity':>12}",
        ]
        for rule, value in sorted(self.nll.items(), key=lambda kv: kv[1]):
            lines.append(f"{rule:<16}{value:>12.4f}{self.ppl[rule]:>12.2f}")
        return "\n".join(lines)


def evaluate_nll(
    dataset_path: str | Path,
    small_model: ScoringModel,
    cloud_client: CloudSessions,
    build_prompts: BuildPrompts | None = None,
    max_tasks: int | None = None,
    progress: bool = True,
    *,
    out_path: str | Path | None = None,
    folds: int = 5,
    top_k: int = DEFAULT_TOP_K,
    echo: Callable[[str], Any] | None = print,
) -> NllReport:
    """Mean teacher-forced NLL per token of every rule; prints a table, writes JSON."""
    tasks, skipped = collect(
        dataset_path, small_model, cloud_client, build_prompts, max_tasks, progress, top_k=top_k
    )
    if not tasks:
        raise ValueError(f"no task of {dataset_path} could be evaluated: {skipped[:3]}")
    per_rule = {name: [t.rule_lp[name] for t in tasks] for name in FIXED_RULE_NAMES}
    if len(tasks) >= 2:
        per_rule["gate"] = kfold_gate_logprobs(tasks, folds)
    n_tokens = sum(len(t.targets) for t in tasks)
    nll = {name: float(-np.concatenate(v).sum() / n_tokens) for name, v in per_rule.items()}
    report = NllReport(
        dataset=str(dataset_path),
        tasks=len(tasks),
        tokens=n_tokens,
        top_k=top_k,
        folds=min(folds, len(tasks)) if len(tasks) >= 2 else 0,
        nll=nll,
        ppl={name: math.exp(min(v, 700)) for name, v in nll.items()},
        per_task=[
            {"tid": t.tid, "tokens": len(t.targets)}
            | {name: float(-per_rule[name][i].mean()) for name in per_rule}
            for i, t in enumerate(tasks)
        ],
        skipped=skipped,
    )
    path = Path(out_path) if out_path else Path(f"{Path(dataset_path).stem}.nll.json")
    report.json_path = str(path)
    write_text_atomic(path, json.dumps(asdict(report), indent=1))
    if echo is not None:
        echo(report.table())
        echo(f"wrote {path}")
        if skipped:
            echo(f"skipped {len(skipped)} task(s); reasons are in the JSON")
    return report
