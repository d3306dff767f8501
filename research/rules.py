"""Fusion rules that only evaluation uses, and the fixed set every evaluation compares.

The serving rules and their names live in `edge_agent.collab.fusion`; these extras are
baselines and the paper code's variant, never chosen by a request.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, get_args

import numpy as np

from edge_agent.collab.fusion import FusionRule, maximum, mean, weighted

ResearchRuleName = Literal["logmean", "edge", "cloud"]
RESEARCH_RULE_NAMES: tuple[ResearchRuleName, ...] = get_args(ResearchRuleName)


def _logmean(le: np.ndarray, lc: np.ndarray, edge, cloud) -> tuple[np.ndarray, None]:
    return 0.5 * (le + lc), None


logmean = FusionRule("logmean", _logmean, mixture=False)
"""``sqrt(p_e * p_c)``, renormalized: the paper's released code averages log-probs like
this (a product of experts)."""
edge_only = replace(weighted(1.0), name="edge")
cloud_only = replace(weighted(0.0), name="cloud")

FIXED_RULES: tuple[FusionRule, ...] = (
    edge_only,
    cloud_only,
    mean,
    maximum,
    logmean,
    weighted(0.25),
    weighted(0.75),
)
"""The rules without learned parameters that every teacher-forced evaluation scores."""
FIXED_RULE_NAMES: tuple[str, ...] = tuple(rule.name for rule in FIXED_RULES)
