"""The learned gate, as the edge serves it: load a trained gate file, predict the weight.

The paper's fusion network reads both full logit vectors (2 x vocab inputs, about 156M
parameters for a 150k vocabulary). Ours reads 12 summary features of the two
distributions (see features.py) and has a few hundred parameters:

    x (12) -> standardize -> tanh(W1 x + b1) (16) -> sigmoid(w2 . h + b2) = w in [0, 1]
    p(t) = w * p_edge(t) + (1 - w) * p_cloud(t)

`Gate` is a `fusion.WeightModel`. Training lives in `research.gate_training`, which
writes the file this module reads (`Gate.to_dict` is the one definition of the format).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from edge_agent.collab.features import FEATURES, N_FEATURES, gate_features
from edge_agent.collab.fusion import Side, TopKArrays

FORMAT = "cogenesis-gate"
FORMAT_VERSION = 1


class GateFileError(ValueError):
    """A gate file that is missing, unreadable, or not a gate of this version."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


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

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Standardized input, hidden layer and weight of each row (training needs all)."""
        xs = (x - self.mean) / self.std
        h = np.tanh(xs @ self.w1 + self.b1)
        w = _sigmoid(h @ self.w2 + self.b2)
        return xs, h, w

    def weight(self, features: np.ndarray) -> np.ndarray:
        """Small-model weight in [0, 1] for each row of `features` (n, 12)."""
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if features.shape[1] != N_FEATURES:
            raise ValueError(f"expected {N_FEATURES} features, got {features.shape[1]}")
        return self.forward(features)[2]

    def mixing_weight(self, edge: Side, cloud: TopKArrays) -> float:
        """The weight at one fused step (the `fusion.WeightModel` protocol)."""
        return float(self.weight(gate_features(edge, cloud)[None, :])[0])

    # --- the file format ---------------------------------------------------------------

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
            return cls.from_json(raw)
        except GateFileError as exc:
            raise GateFileError(f"{path}: {exc}") from None

    @classmethod
    def from_json(cls, raw: str | bytes) -> Gate:
        """A gate from the text of a gate file (the edge's gate library reads the bytes
        itself, so that no file it opens can block)."""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GateFileError(f"not a gate file (not JSON: {exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise GateFileError(f"not a gate file (format must be {FORMAT!r})")
        if data.get("version") != FORMAT_VERSION:
            raise GateFileError(
                f"gate format version {data.get('version')!r} is not supported "
                f"(expected {FORMAT_VERSION}); retrain with `cogenesis fusion train`"
            )
        if data.get("features") != list(FEATURES):
            raise GateFileError("the gate was trained on different features")
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
        except GateFileError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise GateFileError(f"malformed gate parameters ({exc!r})") from exc
