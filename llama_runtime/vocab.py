"""Facts about a loaded model's vocabulary, read the same way on both ends."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import llama_cpp
from llama_cpp import Llama

from shared_protocol.fingerprint import tokenizer_fingerprint


def token_pieces(llm: Llama) -> Iterator[bytes]:
    """Each token's raw bytes in id order, special tokens as their text.

    This is the protocol's definition of a token (see `shared_protocol.fingerprint`).
    """
    vocab = llm._model.vocab
    buf = ctypes.create_string_buffer(256)
    for token in range(llm.n_vocab()):
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, True)
        if n < 0:  # buffer too small: -n is the size needed
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, True)
        yield buf.raw[:n]


def vocab_fingerprint(llm: Llama) -> str:
    """The tokenizer fingerprint both ends compare before logits mode."""
    return tokenizer_fingerprint(token_pieces(llm))


def token_text(llm: Llama, token: int) -> str:
    """A token's text as the vocabulary stores it ("" for a missing token, id < 0)."""
    return llm._model.token_get_text(token) if token >= 0 else ""


def end_of_generation_ids(llm: Llama) -> frozenset[int]:
    """Tokens that end a reply: llama.cpp's own list (EOS, EOT and the like)."""
    vocab = llm._model.vocab
    return frozenset(t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t))


def control_token_texts(llm: Llama) -> set[str]:
    """The texts of control tokens ("<|im_start|>", "<|im_end|>", ...)."""
    vocab = llm._model.vocab
    return {
        token_text(llm, t)
        for t in range(llm.n_vocab())
        if llama_cpp.llama_vocab_is_control(vocab, t)
    }
