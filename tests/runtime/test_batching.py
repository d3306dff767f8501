"""Batch splits and reusable prefixes: the rules that make decoding batch-invariant."""

from __future__ import annotations

import pytest

from llama_runtime.batching import batches, common_prefix, reusable_prefix


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [([], [1, 2], 0), ([1, 2, 3], [1, 2, 3], 3), ([1, 2, 3], [1, 2], 2), ([1, 5, 3], [1, 2, 3], 1)],
)
def test_common_prefix(a: list[int], b: list[int], shared: int) -> None:
    assert common_prefix(a, b) == shared


def test_batches_cover_the_span_and_never_hold_one_token_of_a_longer_span() -> None:
    for size in (3, 4, 8):
        for start in range(0, 5):
            for end in range(start + 1, start + 30):
                split = batches(start, end, size)
                covered = [i for lo, hi in split for i in range(lo, hi)]
                assert covered == list(range(start, end))
                assert all(hi - lo <= size for lo, hi in split)
                if end - start > 1:
                    assert all(hi - lo >= 2 for lo, hi in split), (start, end, size, split)


def test_a_batch_too_small_to_lend_a_token_is_refused() -> None:
    with pytest.raises(ValueError):
        batches(0, 3, 2)  # 2 + 1 or 1 + 2: a lone token either way


def test_the_reusable_prefix_leaves_every_asked_position_and_two_tokens_to_decode() -> None:
    for n_tokens in range(1, 12):
        for shared in range(0, n_tokens + 1):
            for n_out in range(0, n_tokens + 1):
                keep = reusable_prefix(shared, n_tokens, n_out)
                assert 0 <= keep <= shared
                assert n_tokens - keep >= min(max(n_out, 2), n_tokens)
