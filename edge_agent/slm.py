"""The on-device small model: llama.cpp with the model's own chat template.

`SmallModel` exposes decode-loop primitives (start, append, rewind) instead of a
finished generate call, because the collaboration loops interleave the small model's
steps with the cloud's top-k at token granularity.
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np
from jinja2.sandbox import ImmutableSandboxedEnvironment
from llama_cpp import Llama

from edge_agent.prefix_cache import KVState, PrefixCache
from shared_protocol.fingerprint import tokenizer_fingerprint

PickFn = Callable[[np.ndarray], int]


class ModelLoadError(RuntimeError):
    pass


class ContextFull(RuntimeError):
    pass


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass
class DecodeTimer:
    """Seconds spent inside the small model, for the response's `cogenesis` object."""

    seconds: float = 0.0
    prefill_tokens: int = 0
    cached_tokens: int = 0


class SmallModel:
    """One llama.cpp context. Callers hold `lock` around a whole decode loop."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        prefix_cache: PrefixCache | None = None,
    ) -> None:
        if not Path(model_path).is_file():
            raise ModelLoadError(f"model file not found: {model_path}")
        threads = n_threads or max((os.cpu_count() or 2) // 2, 1)
        try:
            self._llm = Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=threads,
                # The library's default batch threads are all cores even when n_threads
                # is lower; on a busy machine the spinning threads slow prefill badly.
                n_threads_batch=threads,
                logits_all=False,
                # Batch invariance: with flash attention off and no one-token prefill
                # batch (see start), a prompt's log-probs do not depend on how much of
                # it came from the prefix cache.
                flash_attn=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot load GGUF model {model_path}: {exc}") from exc
        self.model_path = Path(model_path)
        self.model_id = self.model_path.stem
        self.n_ctx = n_ctx
        self.vocab_size = self._llm.n_vocab()
        self.eos_ids = {self._llm.token_eos()}
        self.prefix_cache = prefix_cache if prefix_cache is not None else PrefixCache(8)
        self.lock = threading.RLock()
        self.timer = DecodeTimer()
        template = self._llm.metadata.get("tokenizer.chat_template")
        self._template = (
            ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
                template
            )
            if template
            else None
        )
        for name in ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>"):
            ids = self._llm.tokenize(name.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                self.eos_ids.add(ids[0])
        self._fingerprint: str | None = None

    # --- tokenizer -----------------------------------------------------------------

    @property
    def tokenizer_fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = tokenizer_fingerprint(self._token_pieces())
        return self._fingerprint

    def _token_pieces(self) -> Iterator[bytes]:
        """Each token's raw bytes, special tokens as their text (the protocol's definition)."""
        vocab = self._llm._model.vocab
        buf = ctypes.create_string_buffer(256)
        for token in range(self.vocab_size):
            n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, True)
            if n < 0:  # buffer too small: -n is the size needed
                buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, True)
            yield buf.raw[:n]

    def render_chat(
        self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        """Render messages with the model's own chat template, ready for the answer."""
        if self._template is None:
            # A base model without a template: plain role-prefixed text.
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
            return text + ("assistant:" if add_generation_prompt else "")
        return self._template.render(
            messages=list(messages),
            add_generation_prompt=add_generation_prompt,
            bos_token="",
            eos_token="",
        )

    def tokenize(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detokenize(self, ids: Sequence[int]) -> bytes:
        return self._llm.detokenize(list(ids))

    def is_eos(self, token_id: int) -> bool:
        return token_id in self.eos_ids

    # --- decode primitives -----------------------------------------------------------

    @property
    def n_tokens(self) -> int:
        return self._llm.n_tokens

    @property
    def tokens(self) -> list[int]:
        return self._llm.input_ids[: self._llm.n_tokens].tolist()

    def start(
        self, tokens: Sequence[int], *, prefix_key: str | None = None, prefix_len: int = 0
    ) -> np.ndarray:
        """Reset the context to `tokens`; return next-token log-probs.

        When `prefix_key` names a cached KV state of the first `prefix_len` tokens (a
        user's private prefix), that prefill is skipped. Whatever is already in the
        context and shares a prefix with `tokens` is reused too.
        """
        tokens = list(tokens)
        if not tokens:
            raise ValueError("cannot start from an empty prompt")
        if len(tokens) >= self.n_ctx:
            raise ValueError(f"prompt of {len(tokens)} tokens exceeds the context of {self.n_ctx}")
        started = time.perf_counter()
        reused = self._common_prefix(tokens)
        if prefix_key is not None and prefix_len > reused:
            state = self.prefix_cache.get(prefix_key)
            if state is not None and state.tokens == tokens[:prefix_len]:
                self._restore(state)
                reused = prefix_len
        # Evaluate at least the last two tokens: their logits must be fresh, and
        # llama.cpp's one-token batch computes slightly different values than a longer
        # batch, which would make a cached start differ from a cold one.
        reused = min(reused, max(len(tokens) - 2, 0))
        self.rewind(reused)
        self.timer.cached_tokens += reused
        if prefix_key is not None and prefix_len > reused:
            self._eval(tokens[reused:prefix_len], logits_for_last=0)
            self.prefix_cache.put(prefix_key, self._snapshot())
            reused = prefix_len
        self.timer.prefill_tokens += len(tokens) - reused
        rows = self._eval(tokens[reused:], logits_for_last=1)
        self.timer.seconds += time.perf_counter() - started
        return rows[-1]

    def append(self, tokens: Sequence[int]) -> np.ndarray:
        """Evaluate `tokens` after the context; return log-probs after the last one."""
        return self.append_all(tokens, keep_last=1)[-1]

    def append_all(self, tokens: Sequence[int], keep_last: int | None = None) -> np.ndarray:
        """Evaluate `tokens`; return log-probs after each of the last `keep_last` of them."""
        tokens = list(tokens)
        if not tokens:
            raise ValueError("nothing to append")
        if self.n_tokens + len(tokens) > self.n_ctx:
            raise ContextFull(f"context of {self.n_ctx} tokens is full")
        started = time.perf_counter()
        rows = self._eval(tokens, logits_for_last=len(tokens) if keep_last is None else keep_last)
        self.timer.seconds += time.perf_counter() - started
        return rows

    def rewind(self, n_tokens: int) -> None:
        """Forget everything after the first `n_tokens` tokens."""
        if n_tokens < self._llm.n_tokens:
            self._llm._ctx.kv_cache_seq_rm(-1, n_tokens, -1)
            self._llm.n_tokens = n_tokens

    def generate(
        self,
        first_logprobs: np.ndarray,
        max_tokens: int,
        pick: PickFn,
    ) -> Iterator[int]:
        """Plain local decoding from the current context; yields token ids until EOS."""
        logprobs = first_logprobs
        for _ in range(max_tokens):
            token = pick(logprobs)
            if self.is_eos(token):
                return
            yield token
            if self.n_tokens + 1 >= self.n_ctx:
                return
            logprobs = self.append([token])

    # --- internals -------------------------------------------------------------------

    def _common_prefix(self, tokens: Sequence[int]) -> int:
        current = self._llm.input_ids[: self._llm.n_tokens]
        n = min(len(current), len(tokens))
        if n == 0:
            return 0
        mismatch = np.nonzero(current[:n] != np.asarray(tokens[:n]))[0]
        return int(mismatch[0]) if len(mismatch) else n

    def _eval(self, tokens: list[int], logits_for_last: int) -> np.ndarray:
        """One pass over `tokens` in batches; log-probs for the last `logits_for_last`."""
        llm = self._llm
        rows: list[np.ndarray] = []
        n_batch = llm.n_batch
        first_wanted = len(tokens) - logits_for_last
        for start in range(0, len(tokens), n_batch):
            chunk = tokens[start : start + n_batch]
            n_past = llm.n_tokens
            llm._batch.set_batch(batch=chunk, n_past=n_past, logits_all=False)
            wanted = [i for i in range(len(chunk)) if start + i >= first_wanted]
            for i in range(len(chunk)):
                llm._batch.batch.logits[i] = i in wanted
            llm._ctx.decode(llm._batch)
            llm.input_ids[n_past : n_past + len(chunk)] = chunk
            llm.n_tokens += len(chunk)
            for i in wanted:
                pointer = llm._ctx.get_logits_ith(i)
                row = np.ctypeslib.as_array(pointer, shape=(self.vocab_size,)).astype(np.float32)
                rows.append(row)
        if not rows:
            return np.empty((0, self.vocab_size), dtype=np.float32)
        return log_softmax(np.stack(rows))

    def _snapshot(self) -> KVState:
        ctx = self._llm._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(ctx, buffer, size)
        return KVState(tokens=self.tokens, data=ctypes.string_at(buffer, written))

    def _restore(self, state: KVState) -> None:
        buffer = (ctypes.c_uint8 * len(state.data)).from_buffer_copy(state.data)
        llama_cpp.llama_state_set_data(self._llm._ctx.ctx, buffer, len(state.data))
        n = len(state.tokens)
        self._llm.input_ids[:n] = state.tokens
        self._llm.n_tokens = n


def load_detokenizer(model_path: Path) -> Callable[[Sequence[int]], str]:
    """Token ids to text with only the model's vocabulary loaded (no weights)."""
    if not Path(model_path).is_file():
        raise ModelLoadError(f"model file not found: {model_path}")
    vocab = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    return lambda ids: vocab.detokenize(list(ids)).decode("utf-8", errors="replace")


class SmallModelPool:
    """A few llama.cpp contexts over one mmapped GGUF, so requests can overlap.

    Weights are shared through the page cache; each context has its own KV cache. The
    prefix cache is shared too, so a user's cached prefix helps whichever context runs.
    """

    def __init__(self, factory: Callable[[], SmallModel], size: int = 1) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one model")
        self._idle: queue.SimpleQueue[SmallModel] = queue.SimpleQueue()
        self.models = [factory() for _ in range(size)]
        for model in self.models:
            self._idle.put(model)

    @property
    def primary(self) -> SmallModel:
        return self.models[0]

    @contextmanager
    def acquire(self) -> Iterator[SmallModel]:
        model = self._idle.get()
        try:
            yield model
        finally:
            self._idle.put(model)
