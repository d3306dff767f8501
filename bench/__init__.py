"""Benchmarks, run from the checkout as modules: ``python -m bench.sketch`` (see README).

Each prints a table and writes JSON to ``RESULTS``; ``bench.harness`` starts both ends.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# The CoGenesis dev set is not part of this repository; it sits beside the checkout.
DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "cogenesis_context_aware_dev.json"
