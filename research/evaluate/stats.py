"""Means with 95% confidence intervals (percentile bootstrap, seeded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

RESAMPLES = 10_000


@dataclass(frozen=True)
class Estimate:
    mean: float | None
    low: float | None  # 95% CI; None below two values
    high: float | None
    n: int
    missing: int = 0

    def as_json(self) -> dict:
        return asdict(self)


def mean_ci(values: Sequence[float | None], seed: int = 0) -> Estimate:
    """Mean of the present values and a 95% percentile-bootstrap interval around it.

    ``None`` values (a judge gave no rating) are counted as missing, not as a score.
    """
    present = np.array([v for v in values if v is not None], dtype=np.float64)
    missing = len(values) - len(present)
    if len(present) == 0:
        return Estimate(None, None, None, 0, missing)
    mean = float(present.mean())
    if len(present) < 2:
        return Estimate(mean, None, None, 1, missing)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(present), size=(RESAMPLES, len(present)))
    means = present[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(mean, float(low), float(high), len(present), missing)
