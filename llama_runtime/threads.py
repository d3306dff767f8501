"""How many CPU threads a llama.cpp context uses."""

from __future__ import annotations

import os


def resolve_threads(n_threads: int | None) -> int:
    """`n_threads`, or half the cores (at least one) when it is None or 0.

    Resolved before loading so that batch threads follow it: llama-cpp-python's default
    batch threads are all cores even when n_threads is lower, and on a busy machine the
    spinning threads make prefill up to 10x slower.
    """
    if n_threads is not None and n_threads < 0:
        raise ValueError(f"n_threads must be positive, not {n_threads}")
    return n_threads or max((os.cpu_count() or 2) // 2, 1)
