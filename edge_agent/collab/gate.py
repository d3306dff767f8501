"""The learned gate: a small numpy MLP that predicts the small model's mixing weight.

The paper's fusion network reads both full logit vectors (2 x vocab inputs, about 156M
parameters for a 150k vocabulary). Ours reads 12 summary features of the two
distributions (see `FEATURES`) and has a few hundred parameters:

    x (12) -> standardize -> tanh(W1 x + b1) (16) -> sigmoid(w2 . h + b2) = w in [0, 1]
    p(t) = w * p_edge(t) + (1 - w) * p_cloud(t)

Training maximizes the mixture's probability of the reference token at every
teacher-forced position (the loss is the mean NLL of the reference token), full batch
with Adam and early stopping on held-out tasks. Gradients are written by hand; only
numpy is needed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_agent.collab.fusion import Side, TopKArrays, rest_logprob, side_logprobs, side_top

if TYPE_CHECKING:
    from edge_agent.collab.nll import GateReport

FORMAT = "cogenesis-gate"
FORMAT_VERSION = 1

FEATURES = (
    "edge_top1_logprob",
    "edge_margin",  # top-1 minus top-2 log-prob
    "edge_entropy",
    "edge_topk_mass",  # probability mass in the edge's top-k (k = the cloud's k)
    "cloud_top1_logprob",
    "cloud_margin",
    "cloud_entropy",  # over top-k plus the uniform remaining mass
    "cloud_rest_logmass",  # log(1 - sum of the cloud's top-k probabilities)
    "agree_top1",  # 1 when both sides' top-1 tokens are the same
    "cloud_logprob_of_edge_top1",
    "edge_logprob_of_cloud_top1",
    "topk_overlap",  # |top-k(edge) & top-k(cloud)| / k
)
N_FEATURES = len(FEATURES)
LOGPROB_FLOOR = -30.0


class GateFileError(ValueError):
    """A gate file that is missing, unreadable, or not a gate of this version."""


def _entropy_full(lp: np.ndarray) -> float:
    p = np.exp(lp.astype(np.float64))
    return float(-(p * np.where(p > 0, lp, 0.0)).sum())


def _entropy_topk(top: TopKArrays) -> float:
    p = np.exp(top.logprobs)
    h = float(-(p * top.logprobs).sum())
    rest = max(1.0 - float(p.sum()), 0.0)
    if rest > 0:
        h -= rest * rest_logprob(top)
    return h


def gate_features(edge: Side, cloud: TopKArrays) -> np.ndarray:
    """The gate's input at one position: edge log-probs (full or top-k), cloud top-k."""
    k = max(len(cloud.token_ids), 2)
    etop = side_top(edge, k)
    c_ids, c_lps = cloud.token_ids, cloud.logprobs
    e1 = float(etop.logprobs[0])
    e_margin = e1 - float(etop.logprobs[1]) if len(etop.logprobs) > 1 else 0.0
    if isinstance(edge, np.ndarray):
        e_entropy = _entropy_full(edge)
    else:
        e_entropy = _entropy_topk(edge)
    e_mass = float(np.exp(etop.logprobs).sum())
    c1 = float(c_lps[0]) if len(c_lps) else LOGPROB_FLOOR
    c_margin = c1 - float(c_lps[1]) if len(c_lps) > 1 else 0.0
    c_rest = max(1.0 - float(np.exp(c_lps).sum()), 1e-9)
    agree = float(len(c_ids) > 0 and int(c_ids[0]) == int(etop.token_ids[0]))
    c_of_e1 = float(side_logprobs(cloud, etop.token_ids[:1])[0])
    e_of_c1 = float(side_logprobs(edge, c_ids[:1])[0]) if len(c_ids) else LOGPROB_FLOOR
    overlap = len(np.intersect1d(etop.token_ids, c_ids)) / k
    x = np.array(
        [
            e1,
            e_margin,
            e_entropy,
            e_mass,
            c1,
            c_margin,
            _entropy_topk(cloud),
            math.log(c_rest),
            agree,
            c_of_e1,
            e_of_c1,
            overlap,
        ],
        dtype=np.float64,
    )
    return np.maximum(x, LOGPROB_FLOOR)


@dataclass
class TrainStats:
    epochs: int
    train_nll: float
    val_nll: float | None
    history: list[tuple[int, float, float | None]] = field(default_factory=list)
    val_rows: np.ndarray | None = None  # rows held out for early stopping


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def mixture_nll(w: np.ndarray, edge_lp: np.ndarray, cloud_lp: np.ndarray) -> np.ndarray:
    """-log(w p_e + (1 - w) p_c) per row, from the sides' log-probs of the target."""
    w = np.clip(w, 1e-12, 1 - 1e-12)
    return -np.logaddexp(np.log(w) + edge_lp, np.log1p(-w) + cloud_lp)


class Gate:
    """The mixing-weight model. `weight(features)` gives the small model's weight."""

    def __init__(
        self,
        w1: np.ndarray,
        b1: np.ndarray,
        w2: np.ndarray,
        b2: float,
        mean: np.ndarray,
        std: np.ndarray,
        meta: dict | None = None,
    ) -> None:
        self.w1 = np.asarray(w1, dtype=np.float64)
        self.b1 = np.asarray(b1, dtype=np.float64)
        self.w2 = np.asarray(w2, dtype=np.float64)
        self.b2 = float(b2)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.meta = dict(meta or {})
        hidden = self.b1.shape[0] if self.b1.ndim == 1 else -1
        if (
            self.w1.shape != (N_FEATURES, hidden)
            or self.w2.shape != (hidden,)
            or self.mean.shape != (N_FEATURES,)
            or self.std.shape != (N_FEATURES,)
        ):
            raise GateFileError("gate parameters have inconsistent shapes")
        arrays = (self.w1, self.b1, self.w2, self.mean, self.std)
        if not all(np.isfinite(a).all() for a in arrays) or not math.isfinite(self.b2):
            raise GateFileError("gate parameters are not all finite")
        if (self.std <= 0).any():
            raise GateFileError("gate feature scales must be positive")

    @property
    def n_params(self) -> int:
        return self.w1.size + self.b1.size + self.w2.size + 1

    # --- inference ---------------------------------------------------------------------

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs = (x - self.mean) / self.std
        h = np.tanh(xs @ self.w1 + self.b1)
        w = _sigmoid(h @ self.w2 + self.b2)
        return xs, h, w

    def weight(self, features: np.ndarray) -> np.ndarray:
        """Small-model weight in [0, 1] for each row of `features` (n, 12)."""
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if features.shape[1] != N_FEATURES:
            raise ValueError(f"expected {N_FEATURES} features, got {features.shape[1]}")
        return self._forward(features)[2]

    def nll(self, features: np.ndarray, edge_lp: np.ndarray, cloud_lp: np.ndarray) -> float:
        """Mean NLL of the targets under the gated mixture."""
        return float(mixture_nll(self.weight(features), edge_lp, cloud_lp).mean())

    # --- training ----------------------------------------------------------------------

    @classmethod
    def train(
        cls,
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
        """Fit the gate.

        `features` is (n, 12) from `gate_features`; `targets` is (n, 2): the edge's and
        the cloud's log-prob of the reference token at each position. `groups` (n,)
        names each row's task, so the early-stopping split holds out whole tasks.
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
            return cls(p["w1"], p["b1"], p["w2"], float(p["b2"][0]), mean, std)

        xt, tt = x[train_idx], t[train_idx]
        best = (math.inf, None, 0)
        history: list[tuple[int, float, float | None]] = []
        epoch = 0
        for epoch in range(1, epochs + 1):
            g = model(params)
            xs, h, w = g._forward(xt)
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
            val = (
                model(params).nll(x[val_idx], t[val_idx, 0], t[val_idx, 1])
                if len(val_idx)
                else None
            )
            history.append((epoch, loss, val))
            score = val if val is not None else loss
            if score < best[0] - 1e-6:
                best = (score, {k: v.copy() for k, v in params.items()}, epoch)
            elif epoch - best[2] >= patience:
                break
        chosen = best[1] or params
        gate = model(chosen)
        stats = TrainStats(
            epochs=epoch,
            train_nll=gate.nll(xt, tt[:, 0], tt[:, 1]),
            val_nll=gate.nll(x[val_idx], t[val_idx, 0], t[val_idx, 1]) if len(val_idx) else None,
            history=history,
            val_rows=val_idx,
        )
        gate.meta.update({"rows": int(len(x)), "epochs": epoch, "best_epoch": best[2]})
        return gate, stats

    # --- files -------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "features": list(FEATURES),
            "hidden": int(self.b1.shape[0]),
            "w1": self.w1.tolist(),
            "b1": self.b1.tolist(),
            "w2": self.w2.tolist(),
            "b2": self.b2,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Gate:
        path = Path(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise GateFileError(f"gate file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise GateFileError(f"cannot read gate file {path}: {exc}") from exc
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise GateFileError(f"{path} is not a gate file (not JSON: {exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise GateFileError(f"{path} is not a gate file (format must be {FORMAT!r})")
        if data.get("version") != FORMAT_VERSION:
            raise GateFileError(
                f"{path}: gate format version {data.get('version')!r} is not supported "
                f"(expected {FORMAT_VERSION}); retrain with `cogenesis fusion train-gate`"
            )
        if data.get("features") != list(FEATURES):
            raise GateFileError(f"{path}: the gate was trained on different features")
        try:
            return cls(
                np.asarray(data["w1"], dtype=np.float64),
                np.asarray(data["b1"], dtype=np.float64),
                np.asarray(data["w2"], dtype=np.float64),
                float(data["b2"]),
                np.asarray(data["mean"], dtype=np.float64),
                np.asarray(data["std"], dtype=np.float64),
                data.get("meta") or {},
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, GateFileError):
                raise GateFileError(f"{path}: {exc}") from None
            raise GateFileError(f"{path}: malformed gate parameters ({exc!r})") from exc


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


def train_gate_from_dataset(
    dataset_path: str | Path,
    small_model: Any,
    cloud_client: Any,
    out_path: str | Path,
    max_tasks: int | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> GateReport:
    """Teacher-force a CoGenesis dataset on both ends, train the gate, save it.

    See `edge_agent.collab.nll.train_gate_from_dataset` (the extraction lives there).
    """
    from edge_agent.collab.nll import train_gate_from_dataset as train

    return train(dataset_path, small_model, cloud_client, out_path, max_tasks, progress, **kwargs)
