"""llama.cpp engine: one native context, per-session KV states saved in a small LRU.

Scoring uses the low-level API: one ``llama_decode`` over the tokens the context has not
seen yet, with logits requested only at the positions asked for. ``create_completion``
is avoided for log-probs: its string keys collide on byte tokens and its echo is off by
one without BOS.

Results are batch-invariant (flash attention off, no one-token batches), so a session
that reuses its KV cache returns exactly what a fresh evaluation of its tokens returns.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloud_service.engines.base import ChatMessages, ChatResult, Engine, TopKRow, top_k_logprobs
from cloud_service.engines.streaming import ChatStream, SamplingOptions, sample_token
from cloud_service.errors import ContextOverflow, EngineUnavailable

CHATML_FALLBACK = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SEQ = 0  # the only sequence id in the live context
# Chat generation's key: session ids are url-safe base64 and can never take this form.
CHAT_KEY = "\x00chat"


@dataclass(frozen=True)
class _SavedState:
    tokens: tuple[int, ...]
    kv: bytes  # llama_state_seq_get_data of SEQ: KV cells only, no logits


class LlamaCppEngine(Engine):
    name = "llamacpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        max_saved_states: int = 8,
    ) -> None:
        super().__init__()
        path = Path(model_path)
        if not path.is_file():
            raise EngineUnavailable(f"model file not found: {path}")
        try:
            import llama_cpp
        except ImportError as exc:  # pragma: no cover - a dependency of the cloud extra
            raise EngineUnavailable(
                "the llamacpp engine needs llama-cpp-python: pip install 'cogenesis-gateway[cloud]'"
            ) from exc
        self._lib = llama_cpp
        # Resolved here so that batch threads follow it (None would mean all cores).
        threads = n_threads or max((os.cpu_count() or 2) // 2, 1)
        self._llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_ubatch=n_batch,
            n_threads=threads,
            # llama-cpp-python's default batch threads are all cores even when n_threads
            # is lower; spinning threads on a busy machine make prefill 10x slower.
            n_threads_batch=threads,
            logits_all=False,
            # Batch invariance (see _forward): with flash attention on, llama.cpp's CPU
            # logits for the same tokens drift by up to ~1 logit depending on how the
            # tokens were split into batches.
            flash_attn=False,
            verbose=False,
        )
        self._ctx = self._llm._ctx
        self._batch = self._llm._batch
        self._vocab = self._llm._model.vocab
        self.model_id = path.name.removesuffix(".gguf")
        self.vocab_size = self._llm.n_vocab()
        self.n_ctx = self._llm.n_ctx()
        self._n_batch = self._llm.n_batch
        self._lock = threading.RLock()
        self._live_key: str | None = None
        self._live_tokens: list[int] = []
        self._saved: OrderedDict[str, _SavedState] = OrderedDict()
        self._streams: set[str] = set()  # keys of chat streams being generated
        self.max_saved_states = max_saved_states
        self._template = self._chat_template()
        self._control_text = self._control_text_pattern()

    # -- vocabulary and chat template -------------------------------------------------

    def token_pieces(self) -> Iterator[bytes]:
        buf = ctypes.create_string_buffer(256)
        for token in range(self.vocab_size):
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
            if n < 0:  # buffer too small: n is minus the size needed
                buf = ctypes.create_string_buffer(-n)
                n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
            yield buf.raw[:n]

    def _chat_template(self):  # -> llama_chat_format.Jinja2ChatFormatter
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        source = self._llm.metadata.get("tokenizer.chat_template") or CHATML_FALLBACK
        return Jinja2ChatFormatter(
            template=source,
            eos_token=self._piece_text(self._llm.token_eos()),
            bos_token=self._piece_text(self._llm.token_bos()),
            add_generation_prompt=True,
        )

    def _piece_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm._model.token_get_text(token)

    def _control_text_pattern(self) -> re.Pattern[str] | None:
        texts = {
            self._llm._model.token_get_text(t)
            for t in range(self.vocab_size)
            if self._lib.llama_vocab_is_control(self._vocab, t)
        }
        texts = sorted((t for t in texts if len(t) > 1), key=len, reverse=True)
        return re.compile("|".join(map(re.escape, texts))) if texts else None

    def _plain(self, content: str) -> str:
        """Drop control-token text from message content: the rendered prompt is
        tokenized with special=True, and a literal "<|im_end|>" must not end a turn."""
        return self._control_text.sub("", content) if self._control_text else content

    def chat_prompt_tokens(self, system: str | None, user: str) -> list[int]:
        messages = [{"role": "system", "content": system}] if system else []
        return self.chat_messages_tokens([*messages, {"role": "user", "content": user}])

    def chat_messages_tokens(self, messages: ChatMessages) -> list[int]:
        """A conversation through the model's template, with the generation prompt."""
        plain = [{"role": m["role"], "content": self._plain(m["content"])} for m in messages]
        text = self._template(messages=plain).prompt
        bos = self._piece_text(self._llm.token_bos())
        add_bos = self._llm._model.add_bos_token() and not (bos and text.startswith(bos))
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    # -- generation ---------------------------------------------------------------------

    def chat(
        self,
        system: str | None,
        user: str,
        max_tokens: int,
        temperature: float = 0.0,
        *,
        stop: Callable[[str], bool] | None = None,
    ) -> ChatResult:
        prompt = self.chat_prompt_tokens(system, user)
        budget = min(max_tokens, self.n_ctx - len(prompt))
        if budget < 1:
            raise ContextOverflow(
                f"the prompt has {len(prompt)} tokens; the context holds {self.n_ctx}"
            )
        rng = np.random.default_rng(0)
        out: list[int] = []
        while len(out) < budget:
            # The lock is taken per token so that session steps interleave with a long
            # generation. Chat state is saved under one key, which also reuses the
            # constant sketch system prompt between requests.
            with self._lock:
                self._activate(CHAT_KEY)
                (logits,) = self._forward([*prompt, *out], 1)
            token = _pick(logits, temperature, rng)
            if self._lib.llama_vocab_is_eog(self._vocab, token):
                break
            out.append(token)
            if (
                stop is not None
                and b"\n" in self._llm.detokenize([token])
                and stop(self._text(out))
            ):
                break
        return ChatResult(self._text(out), len(prompt), len(out))

    def stream_chat(self, messages: ChatMessages, options: SamplingOptions) -> ChatStream:
        prompt = self.chat_messages_tokens(messages)
        budget = min(options.max_tokens, self.n_ctx - len(prompt))
        if budget < 1:
            raise ContextOverflow(
                f"the prompt has {len(prompt)} tokens; the context holds {self.n_ctx}"
            )
        return ChatStream(
            prompt_tokens=len(prompt),
            tokens=self._sampled(prompt, budget, options),
            token_bytes=lambda token: self._llm.detokenize([token]),
            budget=budget,
            stop=options.stop,
        )

    def _sampled(self, prompt: list[int], budget: int, options: SamplingOptions) -> Iterator[int]:
        """Sampled ids until end-of-generation or the budget; lazy, so a client that
        goes away stops the decode at its next token."""
        rng = np.random.default_rng(options.seed)
        # One stream at a time runs on the chat key, whose KV state then serves the
        # next request's shared prefix. Streams that overlap get keys of their own: two
        # streams taking turns on one key would re-decode each other's prompt at every
        # token, while with their own keys a turn swaps saved KV states.
        with self._lock:
            key = CHAT_KEY if CHAT_KEY not in self._streams else f"{CHAT_KEY}-{uuid.uuid4().hex}"
            self._streams.add(key)
        out: list[int] = []
        try:
            while len(out) < budget:
                with self._lock:  # per token, as in chat(): sessions interleave
                    self._activate(key)
                    (logits,) = self._forward([*prompt, *out], 1)
                token = sample_token(logits, options.temperature, options.top_p, rng)
                if self._lib.llama_vocab_is_eog(self._vocab, token):
                    return
                out.append(token)
                yield token
        finally:
            with self._lock:
                self._streams.discard(key)
                if key != CHAT_KEY:
                    self.release(key)

    def _text(self, tokens: list[int]) -> str:
        return self._llm.detokenize(tokens).decode("utf-8", errors="replace")

    # -- scoring ------------------------------------------------------------------------

    def score(self, key: str, tokens: Sequence[int], n_out: int, top_k: int) -> list[TopKRow]:
        if not 1 <= n_out <= len(tokens):
            raise ValueError("n_out must be between 1 and len(tokens)")
        with self._lock:
            self._activate(key)
            return [top_k_logprobs(row, top_k) for row in self._forward(tokens, n_out)]

    def release(self, key: str) -> None:
        with self._lock:
            self._saved.pop(key, None)
            if self._live_key == key:
                self._live_key = None
                self._live_tokens = []
                self._ctx.kv_cache_clear()

    def close(self) -> None:
        with self._lock:
            self._saved.clear()
            self._llm.close()

    @property
    def saved_keys(self) -> list[str]:
        """Keys with a saved KV state, least recently used first (for tests and stats)."""
        with self._lock:
            return list(self._saved)

    # -- the live context -------------------------------------------------------------

    def _activate(self, key: str) -> None:
        """Make ``key`` own the live context, stashing the previous owner's KV bytes."""
        if key == self._live_key:
            return
        if self._live_key is not None and self._live_tokens and self.max_saved_states > 0:
            self._saved[self._live_key] = _SavedState(tuple(self._live_tokens), self._save_kv())
            self._saved.move_to_end(self._live_key)
            while len(self._saved) > self.max_saved_states:
                self._saved.popitem(last=False)
        self._ctx.kv_cache_clear()
        self._live_key, self._live_tokens = key, []
        saved = self._saved.pop(key, None)
        if saved is not None and self._load_kv(saved.kv):
            self._live_tokens = list(saved.tokens)
        # else: the state was evicted (or never saved); the next forward re-evaluates.

    def _save_kv(self) -> bytes:
        size = self._lib.llama_state_seq_get_size(self._ctx.ctx, SEQ)
        buf = (ctypes.c_uint8 * size)()
        written = self._lib.llama_state_seq_get_data(self._ctx.ctx, buf, size, SEQ)
        return bytes(buf)[:written]

    def _load_kv(self, data: bytes) -> bool:
        src = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if self._lib.llama_state_seq_set_data(self._ctx.ctx, src, len(data), SEQ) == 0:
            self._ctx.kv_cache_clear()
            return False
        return True

    def _forward(self, tokens: Sequence[int], n_out: int) -> list[np.ndarray]:
        """Bring the live context to ``tokens`` and return logits after the last n_out.

        Only the tokens past the longest common prefix with the live context are
        decoded; the prefix is cut so that every requested position is decoded now.

        No batch is ever a single token: llama.cpp's one-token path writes KV entries
        that differ slightly from the batched path (up to ~0.7 logits later on), so a
        lone new token is decoded together with the token before it. With that rule
        and flash attention off, a session matches a fresh evaluation exactly.
        """
        tokens = list(tokens)
        if len(tokens) > self.n_ctx:
            raise ContextOverflow(f"{len(tokens)} tokens exceed the context of {self.n_ctx}")
        keep = min(_common_prefix(self._live_tokens, tokens), len(tokens) - n_out)
        if len(tokens) - keep == 1:
            keep = max(keep - 1, 0)
        if keep < len(self._live_tokens):
            if not self._ctx.kv_cache_seq_rm(SEQ, keep, -1):
                self._ctx.kv_cache_clear()
                keep = 0
            del self._live_tokens[keep:]
        first_out = len(tokens) - n_out
        rows: list[np.ndarray] = []
        try:
            for start, end in _batches(keep, len(tokens), self._n_batch):
                chunk = tokens[start:end]
                self._batch.set_batch(chunk, n_past=start, logits_all=False)
                wanted = [i for i in range(len(chunk)) if start + i >= first_out]
                for i in wanted:
                    self._batch.batch.logits[i] = True
                self._ctx.decode(self._batch)
                self._live_tokens.extend(chunk)
                for i in wanted:
                    pointer = self._ctx.get_logits_ith(i)
                    rows.append(np.ctypeslib.as_array(pointer, shape=(self.vocab_size,)).copy())
        except Exception:
            # The KV cache may be half-written: forget it rather than trust it.
            self._ctx.kv_cache_clear()
            self._live_key, self._live_tokens = None, []
            raise
        return rows


def _batches(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Split [start, end) into batches of at most ``size``, none of one token."""
    bounds = list(range(start, end, size)) + [end]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        bounds[-2] -= 1  # borrow a token from the previous batch
    return list(zip(bounds[:-1], bounds[1:], strict=False))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _pick(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    if temperature <= 0:
        return int(np.argmax(logits))
    x = logits.astype(np.float64) / temperature
    p = np.exp(x - x.max())
    return int(rng.choice(len(p), p=p / p.sum()))
