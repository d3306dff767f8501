"""The live token sequence of one llama.cpp context and the calls that change it.

The `Llama` object's own bookkeeping (`input_ids`, `n_tokens`) is the record of what the
KV cache holds; every change to the cache goes through here so the two never disagree.
Not thread-safe: callers serialize access (the edge's model lock, the engine's lock).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from llama_cpp import Llama

from llama_runtime.batching import batches, common_prefix, reusable_prefix
from llama_runtime.kv_state import SEQ, load_sequence, save_sequence


class LiveContext:
    def __init__(self, llm: Llama) -> None:
        self._llm = llm
        self.n_ctx = llm.n_ctx()
        self.vocab_size = llm.n_vocab()
        self.decoded_tokens = 0  # tokens decoded so far, for prefill statistics

    @property
    def n_tokens(self) -> int:
        return self._llm.n_tokens

    @property
    def tokens(self) -> list[int]:
        return self._llm.input_ids[: self._llm.n_tokens].tolist()

    def shared_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading `tokens` the context already holds."""
        return common_prefix(self._llm.input_ids[: self._llm.n_tokens], tokens)

    def truncate(self, n_tokens: int) -> int:
        """Forget everything after the first `n_tokens`; return how many are kept.

        If llama.cpp cannot cut the cache there, it is cleared and 0 is returned.
        """
        if n_tokens >= self._llm.n_tokens:
            return self._llm.n_tokens
        if not self._llm._ctx.kv_cache_seq_rm(SEQ, n_tokens, -1):
            self.clear()
            return 0
        self._llm.n_tokens = n_tokens
        return n_tokens

    def clear(self) -> None:
        self._llm._ctx.kv_cache_clear()
        self._llm.n_tokens = 0

    def evaluate(self, tokens: Sequence[int], n_out: int) -> np.ndarray:
        """Bring the context to `tokens`; raw logits after each of the last `n_out`.

        Only what is past the shared prefix is decoded, and the prefix is cut so that
        every position asked for, and at least two tokens, are decoded now. Results
        then equal a fresh decode of `tokens` exactly (see `batching`).
        """
        tokens = list(tokens)
        keep = self.truncate(reusable_prefix(self.shared_prefix(tokens), len(tokens), n_out))
        return self.decode(tokens[keep:], n_out)

    def decode(self, tokens: Sequence[int], n_out: int) -> np.ndarray:
        """Decode `tokens` after the live ones; raw logits after each of the last `n_out`.

        A span of two or more tokens is split with no one-token batch; a single token is
        decoded alone (the caller decides whether that is acceptable). If llama.cpp fails,
        the half-written cache is cleared rather than trusted.
        """
        tokens = list(tokens)
        if not 0 <= n_out <= len(tokens):
            raise ValueError(f"n_out must be between 0 and {len(tokens)}, not {n_out}")
        llm = self._llm
        first_out = len(tokens) - n_out
        rows = np.empty((n_out, self.vocab_size), dtype=np.float32)
        try:
            for start, end in batches(0, len(tokens), llm.n_batch):
                chunk = tokens[start:end]
                n_past = llm.n_tokens
                llm._batch.set_batch(batch=chunk, n_past=n_past, logits_all=False)
                for i in range(len(chunk)):  # logits only where asked
                    llm._batch.batch.logits[i] = start + i >= first_out
                llm._ctx.decode(llm._batch)
                llm.input_ids[n_past : n_past + len(chunk)] = chunk
                llm.n_tokens += len(chunk)
                self.decoded_tokens += len(chunk)
                for i in range(max(first_out - start, 0), len(chunk)):
                    pointer = llm._ctx.get_logits_ith(i)
                    rows[start + i - first_out] = np.ctypeslib.as_array(
                        pointer, shape=(self.vocab_size,)
                    )
        except Exception:
            self.clear()
            raise
        return rows

    def save(self) -> bytes:
        """The KV cells of the live tokens (pair them with `tokens` to restore)."""
        return save_sequence(self._llm)

    def restore(self, tokens: Sequence[int], data: bytes) -> None:
        """Load a state saved after exactly `tokens`; raises KVStateError (context
        cleared) when llama.cpp cannot read it."""
        tokens = list(tokens)
        if len(tokens) > self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens exceed the context of {self.n_ctx}")
        self._llm.n_tokens = 0  # the cache is cleared first; keep the record in step
        load_sequence(self._llm, data, len(tokens))
        self._llm.input_ids[: len(tokens)] = tokens
        self._llm.n_tokens = len(tokens)
