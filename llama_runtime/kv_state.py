"""Saving and restoring the KV cells of a context's one sequence, with checked results.

Only the cells of sequence 0 are saved (no logits, no sampler state): a restored context
always decodes at least two more tokens before anyone reads logits (see `batching`).
"""

from __future__ import annotations

import ctypes

import llama_cpp
from llama_cpp import Llama

SEQ = 0  # the only sequence id in a live context


class KVStateError(RuntimeError):
    """llama.cpp could not save or load a KV state; the context has been cleared."""


def save_sequence(llm: Llama) -> bytes:
    """The KV cells of sequence 0 as bytes."""
    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, SEQ)
    buf = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, SEQ)
    if written != size:
        raise KVStateError(f"llama.cpp saved {written} of {size} bytes of KV state")
    return ctypes.string_at(buf, written)


def load_sequence(llm: Llama, data: bytes, n_tokens: int) -> None:
    """Replace the context's KV cells with `data`, saved after `n_tokens` tokens.

    llama.cpp returns 0 for a state it cannot read (short, corrupt, another model's),
    and a state of another length would not match the tokens it is paired with: in
    either case the cache is cleared rather than trusted and KVStateError is raised.
    """
    llm._ctx.kv_cache_clear()
    if not data:
        raise KVStateError("empty KV state")
    src = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    read = llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, src, len(data), SEQ)
    if read != len(data):
        llm._ctx.kv_cache_clear()
        raise KVStateError(f"llama.cpp read {read} of {len(data)} bytes of KV state")
    held = llama_cpp.llama_memory_seq_pos_max(llm._ctx.memory, SEQ) + 1
    if held != n_tokens:
        llm._ctx.kv_cache_clear()
        raise KVStateError(f"the KV state holds {held} tokens, not {n_tokens}")
