"""Batch-invariant decode and checked KV save and restore on one live context."""

from __future__ import annotations

import numpy as np
import pytest
from llama_cpp import Llama

from llama_runtime.context import LiveContext
from llama_runtime.kv_state import KVStateError

pytestmark = pytest.mark.slow  # decodes with the real model


def fresh(context: LiveContext, tokens: list[int], n_out: int) -> np.ndarray:
    context.clear()
    return context.evaluate(tokens, n_out)


def test_logits_do_not_depend_on_how_tokens_were_batched(
    context: LiveContext, sequence: list[int]
) -> None:
    want = fresh(context, sequence, 1)
    context.clear()
    end = 3
    for size in [1, 1, 2, 1, 5, 1, 1, 3, 1, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]:
        end = min(len(sequence), end + size)
        got = context.evaluate(sequence[:end], 1)
    assert end == len(sequence) and np.array_equal(got, want)
    assert context.tokens == sequence


def test_rows_are_the_last_positions_of_a_full_decode(
    context: LiveContext, sequence: list[int]
) -> None:
    every = fresh(context, sequence, len(sequence))
    assert every.shape == (len(sequence), context.vocab_size)
    assert np.array_equal(fresh(context, sequence, 5), every[-5:])
    assert fresh(context, sequence, 0).shape == (0, context.vocab_size)


def test_a_changed_suffix_reuses_the_prefix_and_matches_a_fresh_decode(
    context: LiveContext, sequence: list[int]
) -> None:
    other = [*sequence[:30], *sequence[5:15]]
    want = fresh(context, other, 3)
    fresh(context, sequence, 1)
    decoded = context.decoded_tokens
    got = context.evaluate(other, 3)
    assert np.array_equal(got, want)
    assert context.decoded_tokens - decoded == len(other) - 30  # the shared 30 were kept


def test_truncate_keeps_the_head(context: LiveContext, sequence: list[int]) -> None:
    fresh(context, sequence, 0)
    assert context.truncate(len(sequence) + 5) == len(sequence)
    assert context.truncate(10) == 10 and context.tokens == sequence[:10]


def test_a_saved_state_restores_exactly(context: LiveContext, sequence: list[int]) -> None:
    want = fresh(context, sequence, 2)
    fresh(context, sequence[:25], 0)
    data = context.save()
    context.clear()
    context.restore(sequence[:25], data)
    assert context.tokens == sequence[:25]
    decoded = context.decoded_tokens
    assert np.array_equal(context.evaluate(sequence, 2), want)
    assert context.decoded_tokens - decoded == len(sequence) - 25


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="short"),
        pytest.param(lambda data: b"\xff" * len(data), id="corrupt"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_a_state_llama_cpp_cannot_read_raises_and_clears(
    context: LiveContext, sequence: list[int], damage
) -> None:
    want = fresh(context, sequence, 1)
    fresh(context, sequence[:25], 0)
    data = context.save()
    fresh(context, sequence[:12], 0)  # something live that the failed restore must not keep
    with pytest.raises(KVStateError):
        context.restore(sequence[:25], damage(data))
    assert context.n_tokens == 0 and context.tokens == []
    # Cleared, not half-loaded: the context decodes as if fresh.
    assert np.array_equal(context.evaluate(sequence, 1), want)


def test_a_state_paired_with_the_wrong_tokens_is_refused(
    context: LiveContext, sequence: list[int]
) -> None:
    fresh(context, sequence[:25], 0)
    data = context.save()
    with pytest.raises(KVStateError, match="holds 25 tokens"):
        context.restore(sequence[:26], data)
    assert context.n_tokens == 0


def test_a_failed_decode_clears_the_context(llm: Llama, context: LiveContext) -> None:
    fresh(context, [1, 2, 3, 4], 0)
    with pytest.raises(Exception):  # noqa: B017 - llama.cpp's own error type
        context.decode([5, llm.n_vocab() + 10], 1)
    assert context.n_tokens == 0


def test_asking_for_more_rows_than_tokens_is_refused(context: LiveContext) -> None:
    with pytest.raises(ValueError):
        context.decode([1, 2], 3)
