"""Which tokens to decode: the reusable prefix and batch splits with no lone token.

llama.cpp's one-token batch writes KV entries and logits that differ slightly from a
longer batch (up to ~0.7 logits later on). Never decoding a lone token where a longer
span is decoded, and flash attention off (see `model`), make results batch-invariant:
tokens give the same logits however they were split or cached.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    mismatch = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(mismatch[0]) if len(mismatch) else n


def reusable_prefix(shared: int, n_tokens: int, n_out: int) -> int:
    """How many of `shared` leading live tokens to keep before decoding `n_tokens`.

    Every position asked for (the last `n_out`) is decoded now, and so are at least
    two tokens: a lone re-decoded token would be a one-token batch.
    """
    return max(min(shared, n_tokens - max(n_out, 2)), 0)


def batches(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Split [start, end) into batches of at most `size`, none of one token (unless
    the whole span is one token)."""
    if size < 3:  # a batch that lends a token must keep two
        raise ValueError(f"a batch must hold at least three tokens, not {size}")
    bounds = [*range(start, end, size), end]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        bounds[-2] -= 1  # borrow a token from the previous batch
    return list(zip(bounds[:-1], bounds[1:], strict=False))
