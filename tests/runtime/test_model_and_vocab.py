"""Loading a GGUF, thread counts, and the vocabulary facts both ends read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from llama_cpp import Llama

from llama_runtime.model import ModelLoadError, load_model, load_vocab
from llama_runtime.threads import resolve_threads
from llama_runtime.vocab import (
    control_token_texts,
    end_of_generation_ids,
    token_pieces,
    token_text,
    vocab_fingerprint,
)
from shared_protocol.defaults import default_gguf_path
from shared_protocol.fingerprint import tokenizer_fingerprint

pytestmark = pytest.mark.slow  # loads the real model


def test_threads_default_to_half_the_cores() -> None:
    assert resolve_threads(None) == max((os.cpu_count() or 2) // 2, 1)
    assert resolve_threads(3) == 3
    with pytest.raises(ValueError):
        resolve_threads(-1)


def test_a_missing_or_broken_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "missing.gguf", n_ctx=64)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 60)
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(broken, n_ctx=64)
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_vocab(broken)


def test_the_context_is_loaded_for_batch_invariant_decoding(llm: Llama) -> None:
    assert llm.context_params.n_ubatch == llm.n_batch
    assert llm.context_params.n_threads == llm.context_params.n_threads_batch == 1


def test_token_pieces_are_the_tokens_bytes_with_special_tokens_as_text(llm: Llama) -> None:
    pieces = list(token_pieces(llm))
    assert len(pieces) == llm.n_vocab()
    eos = llm.token_eos()
    assert pieces[eos] == token_text(llm, eos).encode() and len(pieces[eos]) > 1
    for token in range(100, llm.n_vocab(), 997):  # ordinary tokens: what detokenize gives
        assert pieces[token] == llm.detokenize([token])


def test_the_fingerprint_needs_only_the_vocabulary(llm: Llama) -> None:
    fingerprint = vocab_fingerprint(llm)
    assert fingerprint == tokenizer_fingerprint(token_pieces(llm))
    assert vocab_fingerprint(load_vocab(default_gguf_path())) == fingerprint


def test_end_of_generation_includes_eos_and_the_chat_turn_end(llm: Llama) -> None:
    eog = end_of_generation_ids(llm)
    (im_end,) = llm.tokenize(b"<|im_end|>", add_bos=False, special=True)
    assert {llm.token_eos(), im_end} <= eog
    assert not eog & set(llm.tokenize(b"Hello there", add_bos=False, special=False))


def test_control_token_texts_are_the_special_markup(llm: Llama) -> None:
    texts = control_token_texts(llm)
    assert {"<|im_start|>", "<|im_end|>"} <= texts
    assert "Hello" not in texts
