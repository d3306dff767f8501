"""Training the learned gate (edge_agent/collab/gate.py) on teacher-forced data.

Training maximizes the mixture's probability of the reference token at every
teacher-forced position (the loss is the mean NLL of the reference token), full batch
with Adam and early stopping on held-out tasks. Gradients are written by hand; only
numpy is needed. The edge only loads the file written here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_agent.collab.features import N_FEATURES
from edge_agent.collab.gate import Gate
from research.dataset import BuildPrompts
from research.files import write_text_atomic
from research.rules import FIXED_RULE_NAMES
from research.teacher_forcing import (
    DEFAULT_TOP_K,
    CloudSessions,
    ScoringModel,
    TaskLogits,
    collect,
    stack_rows,
)


@dataclass
class TrainStats:
    epochs: int
    train_nll: float
    val_nll: float | None
    history: list[tuple[int, float, float | None]] = field(default_factory=list)
    val_rows: np.ndarray | None = None  # rows held out for early stopping


@dataclass
class GateReport:
    path: str
    tasks: int
    tokens: int
    epochs: int
    train_nll: float
    val_nll: float | None  # on held-out tasks (early stopping split)
    baseline_val_nll: dict[str, float]  # fixed rules on the same held-out tasks
    skipped: list[dict[str, str]] = field(default_factory=list)


def mixture_nll(w: np.ndarray, edge_lp: np.ndarray, cloud_lp: np.ndarray) -> np.ndarray:
    """-log(w p_e + (1 - w) p_c) per row, from the sides' log-probs of the target."""
    w = np.clip(w, 1e-12, 1 - 1e-12)
    return -np.logaddexp(np.log(w) + edge_lp, np.log1p(-w) + cloud_lp)


def gate_nll(gate: Gate, features: np.ndarray, edge_lp: np.ndarray, cloud_lp: np.ndarray) -> float:
    """Mean NLL of the targets under the gated mixture."""
    return float(mixture_nll(gate.weight(features), edge_lp, cloud_lp).mean())


def train_gate(
    features: np.ndarray,
    targets: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    hidden: int = 16,
    epochs: int = 400,
    lr: float = 0.02,
    l2: float = 1e-4,
    val_fraction: float = 0.15,
    patience: int = 40,
    seed: int = 0,
) -> tuple[Gate, TrainStats]:
    """Fit a gate.

    `features` is (n, 12) from `gate_features`; `targets` is (n, 2): the edge's and the
    cloud's log-prob of the reference token at each position. `groups` (n,) names each
    row's task, so the early-stopping split holds out whole tasks.
    """
    x = np.asarray(features, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_FEATURES or t.shape != (len(x), 2) or len(x) == 0:
        raise ValueError("features must be (n, 12) and targets (n, 2), n > 0")
    t = np.maximum(t, -60.0)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = _split(len(x), groups, val_fraction, rng)
    mean = x[train_idx].mean(axis=0)
    std = x[train_idx].std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)
    params = {
        "w1": rng.normal(0.0, 1.0 / math.sqrt(N_FEATURES), (N_FEATURES, hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.normal(0.0, 0.1, hidden),
        "b2": np.zeros(1),
    }
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    b1_, b2_, eps = 0.9, 0.999, 1e-8

    def model(p) -> Gate:
        return Gate(p["w1"], p["b1"], p["w2"], float(p["b2"][0]), mean, std)

    def val_nll(g: Gate) -> float | None:
        return gate_nll(g, x[val_idx], t[val_idx, 0], t[val_idx, 1]) if len(val_idx) else None

    xt, tt = x[train_idx], t[train_idx]
    best = (math.inf, None, 0)
    history: list[tuple[int, float, float | None]] = []
    epoch = 0
    for epoch in range(1, epochs + 1):
        xs, h, w = model(params).forward(xt)
        le, lc = tt[:, 0], tt[:, 1]
        wc = np.clip(w, 1e-12, 1 - 1e-12)
        mix = np.logaddexp(np.log(wc) + le, np.log1p(-wc) + lc)
        loss = float(-mix.mean())
        # d(-log mix)/dw = -(p_e - p_c) / mix; dw/dz = w (1 - w)
        dmix_dw = -(np.exp(le - mix) - np.exp(lc - mix))
        dz = dmix_dw * w * (1 - w) / len(xt)
        grads = {
            "w2": h.T @ dz + l2 * params["w2"],
            "b2": np.array([dz.sum()]),
        }
        dh = np.outer(dz, params["w2"]) * (1 - h * h)
        grads["w1"] = xs.T @ dh + l2 * params["w1"]
        grads["b1"] = dh.sum(axis=0)
        for k, grad in grads.items():
            m, v = moments[k]
            m[:] = b1_ * m + (1 - b1_) * grad
            v[:] = b2_ * v + (1 - b2_) * grad * grad
            mhat = m / (1 - b1_**epoch)
            vhat = v / (1 - b2_**epoch)
            params[k] = params[k] - lr * mhat / (np.sqrt(vhat) + eps)
        val = val_nll(model(params))
        history.append((epoch, loss, val))
        score = val if val is not None else loss
        if score < best[0] - 1e-6:
            best = (score, {k: v.copy() for k, v in params.items()}, epoch)
        elif epoch - best[2] >= patience:
            break
    gate = model(best[1] or params)
    stats = TrainStats(
        epochs=epoch,
        train_nll=gate_nll(gate, xt, tt[:, 0], tt[:, 1]),
        val_nll=val_nll(gate),
        history=history,
        val_rows=val_idx,
    )
    gate.meta.update({"rows": int(len(x)), "epochs": epoch, "best_epoch": best[2]})
    return gate, stats


def _split(
    n: int, groups: np.ndarray | None, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation rows; whole groups (tasks) go to validation."""
    idx = np.arange(n)
    if fraction <= 0:
        return idx, idx[:0]
    if groups is None:
        groups = idx
    names = np.unique(groups)
    if len(names) < 2:
        return idx, idx[:0]
    n_val = max(1, int(round(len(names) * fraction)))
    val_names = rng.choice(names, size=n_val, replace=False)
    val = np.isin(groups, val_names)
    return idx[~val], idx[val]


def save_gate(gate: Gate, path: str | Path) -> Path:
    """Write the gate file atomically: a reader never sees half a gate."""
    return write_text_atomic(path, json.dumps(gate.to_dict(), indent=1))


def kfold_gate_logprobs(
    tasks: Sequence[TaskLogits], folds: int = 5, seed: int = 0
) -> list[np.ndarray]:
    """Gate log-prob of each task's targets, from a gate trained on the other folds."""
    folds = max(2, min(folds, len(tasks)))
    out: list[np.ndarray | None] = [None] * len(tasks)
    for fold in range(folds):
        held = [i for i in range(len(tasks)) if i % folds == fold]
        x, y, groups = stack_rows([tasks[i] for i in range(len(tasks)) if i % folds != fold])
        gate, _ = train_gate(x, y, groups=groups, seed=seed)
        for i in held:
            t = tasks[i]
            out[i] = -mixture_nll(gate.weight(t.features), t.edge_lp, t.cloud_lp)
    return [o for o in out if o is not None]


def train_gate_from_dataset(
    dataset_path: str | Path,
    small_model: ScoringModel,
    cloud_client: CloudSessions,
    out_path: str | Path,
    max_tasks: int | None = None,
    progress: bool = True,
    *,
    build_prompts: BuildPrompts | None = None,
    top_k: int = DEFAULT_TOP_K,
    seed: int = 0,
) -> GateReport:
    """Teacher-force the dataset, train the gate (early stopping on held-out tasks), save."""
    tasks, skipped = collect(
        dataset_path,
        small_model,
        cloud_client,
        build_prompts,
        max_tasks,
        progress,
        top_k=top_k,
        desc="gate data",
    )
    if len(tasks) < 2:
        raise ValueError(f"need at least 2 usable tasks to train the gate, got {len(tasks)}")
    x, y, groups = stack_rows(tasks)
    gate, stats = train_gate(x, y, groups=groups, seed=seed)
    gate.meta.update({"top_k": top_k, "tasks": len(tasks), "dataset": Path(dataset_path).name})
    path = save_gate(gate, out_path)
    # The fixed rules on the same held-out tasks as the gate's validation NLL.
    held = set(groups[stats.val_rows].tolist()) if stats.val_rows is not None else set()
    baseline = {}
    if held:
        for name in FIXED_RULE_NAMES:
            lp = np.concatenate([t.rule_lp[name] for i, t in enumerate(tasks) if i in held])
            baseline[name] = float(-lp.mean())
    return GateReport(
        path=str(path),
        tasks=len(tasks),
        tokens=len(x),
        epochs=stats.epochs,
        train_nll=stats.train_nll,
        val_nll=stats.val_nll,
        baseline_val_nll=baseline,
        skipped=skipped,
    )
