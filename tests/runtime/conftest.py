"""The shared llama.cpp runtime on the real SmolLM2 model."""

from __future__ import annotations

import pytest
from llama_cpp import Llama

from llama_runtime.context import LiveContext
from llama_runtime.model import load_model
from shared_protocol.defaults import default_gguf_path

SMALL_BATCH = 8  # small, so that short sequences already cross batch bounds


@pytest.fixture(scope="session")
def llm() -> Llama:
    return load_model(default_gguf_path(), n_ctx=256, n_threads=1, n_batch=SMALL_BATCH)


@pytest.fixture
def context(llm: Llama) -> LiveContext:
    live = LiveContext(llm)
    live.clear()
    return live


@pytest.fixture(scope="session")
def sequence(llm: Llama) -> list[int]:
    text = "The tide came in slowly over the flats, and the gulls went quiet. " * 3
    return llm.tokenize(text.encode(), add_bos=False, special=False)[:40]
