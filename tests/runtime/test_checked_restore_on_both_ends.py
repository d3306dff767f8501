"""Both ends treat a KV state llama.cpp cannot read as a miss, never as a loaded prefix."""

from __future__ import annotations

import numpy as np
import pytest

from shared_protocol.defaults import default_gguf_path

pytestmark = pytest.mark.slow  # the real model on both ends

MESSAGES = [
    {"role": "system", "content": "You are Ana, a marine biologist in Lisbon. " * 8},
    {"role": "user", "content": "Write a short post about your weekend."},
]


def test_the_edge_prefills_again_over_a_broken_cached_prefix() -> None:
    from edge_agent.prefix_cache import KVState, PrefixCache
    from edge_agent.slm import SmallModel

    cache = PrefixCache(4)
    model = SmallModel(default_gguf_path(), n_ctx=512, n_threads=1, prefix_cache=cache)
    tokens = model.tokenize(model.render_chat(MESSAGES))
    prefix = model.tokenize(model.render_chat(MESSAGES[:1], add_generation_prompt=False))
    assert tokens[: len(prefix)] == prefix
    cold = model.start(tokens)
    model.rewind(0)

    good = PrefixCache(4)
    model.prefix_cache = good
    model.start(tokens, prefix_key="k", prefix_len=len(prefix))
    model.rewind(0)
    state = good.get("k")
    assert state is not None and state.tokens == prefix
    cache.put("k", KVState(tokens=prefix, data=state.data[: len(state.data) // 2]))
    model.prefix_cache = cache

    got = model.start(tokens, prefix_key="k", prefix_len=len(prefix))
    assert np.array_equal(got, cold)
    # The broken entry was replaced by a state that loads.
    repaired = cache.get("k")
    assert repaired is not None and len(repaired.data) == len(state.data)


def test_the_cloud_scores_as_fresh_over_a_broken_saved_session() -> None:
    from cloud_service.engines.llamacpp import LlamaCppEngine, _SavedState

    engine = LlamaCppEngine(default_gguf_path(), n_ctx=512, n_threads=1)
    try:
        prompt = engine.chat_prompt_tokens("Be brief.", "Name a fruit.")
        want = engine.score("fresh", prompt, 2, 5)
        engine.release("fresh")
        engine.score("a", prompt[:-3], 1, 5)
        engine.score("b", prompt[:5], 1, 5)  # switching saves a's state
        saved = engine._saved["a"]
        engine._saved["a"] = _SavedState(saved.tokens, saved.kv[: len(saved.kv) // 2])
        assert engine.score("a", prompt, 2, 5) == want
    finally:
        engine.close()
