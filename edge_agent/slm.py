"""The on-device small model: llama.cpp through the shared `llama_runtime`.

`SmallModel` exposes decode-loop primitives (start, append, rewind) instead of a
finished generate call, because the collaboration loops interleave the small model's
steps with the cloud's top-k at token granularity.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.prefix_cache import KVState, PrefixCache
from llama_runtime.chat_template import ChatTemplate
from llama_runtime.context import LiveContext
from llama_runtime.kv_state import KVStateError
from llama_runtime.model import ModelLoadError, load_model, load_vocab
from llama_runtime.vocab import end_of_generation_ids, vocab_fingerprint

__all__ = [
    "ContextFull",
    "DecodeTimer",
    "ModelLoadError",  # the runtime's, re-exported for the edge's callers
    "PickFn",
    "SmallModel",
    "SmallModelPool",
    "load_detokenizer",
    "log_softmax",
]

PickFn = Callable[[np.ndarray], int]


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
        self._llm = load_model(model_path, n_ctx=n_ctx, n_threads=n_threads)
        self._context = LiveContext(self._llm)
        self.model_path = Path(model_path)
        self.model_id = self.model_path.stem
        self.n_ctx = n_ctx
        self.vocab_size = self._llm.n_vocab()
        self.eos_ids = end_of_generation_ids(self._llm)
        self.prefix_cache = prefix_cache if prefix_cache is not None else PrefixCache(8)
        self.lock = threading.RLock()
        self.timer = DecodeTimer()
        self._template = ChatTemplate.of_model(self._llm)
        self._fingerprint: str | None = None

    # --- tokenizer -----------------------------------------------------------------

    @property
    def tokenizer_fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = vocab_fingerprint(self._llm)
        return self._fingerprint

    def render_chat(
        self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        """Render messages with the model's own chat template, ready for the answer."""
        return self._template.render(messages, add_generation_prompt=add_generation_prompt)

    def tokenize(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detokenize(self, ids: Sequence[int]) -> bytes:
        return self._llm.detokenize(list(ids))

    def is_eos(self, token_id: int) -> bool:
        return token_id in self.eos_ids

    # --- decode primitives -----------------------------------------------------------

    @property
    def n_tokens(self) -> int:
        return self._context.n_tokens

    @property
    def tokens(self) -> list[int]:
        return self._context.tokens

    def shared_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading ``tokens`` the context holds already."""
        return self._context.shared_prefix(tokens)

    def start(
        self, tokens: Sequence[int], *, prefix_key: str | None = None, prefix_len: int = 0
    ) -> np.ndarray:
        """Reset the context to `tokens`; return next-token log-probs.

        When `prefix_key` names a cached KV state of the first `prefix_len` tokens (a
        user's private prefix), that prefill is skipped. Whatever is already in the
        context and shares a prefix with `tokens` is reused too. A cached or a cold
        start give the same log-probs (the runtime's decode is batch-invariant).
        """
        tokens = list(tokens)
        if not tokens:
            raise ValueError("cannot start from an empty prompt")
        if len(tokens) >= self.n_ctx:
            raise ValueError(f"prompt of {len(tokens)} tokens exceeds the context of {self.n_ctx}")
        started = time.perf_counter()
        decoded = self._context.decoded_tokens
        if prefix_key is not None and prefix_len > self._context.shared_prefix(tokens):
            self._load_prefix(tokens[:prefix_len], prefix_key)
        rows = self._context.evaluate(tokens, n_out=1)
        fresh = self._context.decoded_tokens - decoded
        self.timer.prefill_tokens += fresh
        self.timer.cached_tokens += len(tokens) - fresh
        self.timer.seconds += time.perf_counter() - started
        return log_softmax(rows)[-1]

    def append(self, tokens: Sequence[int]) -> np.ndarray:
        """Evaluate `tokens` after the context; return log-probs after the last one."""
        return self.append_all(tokens, keep_last=1)[-1]

    def append_all(self, tokens: Sequence[int], keep_last: int | None = None) -> np.ndarray:
        """Evaluate `tokens`; return log-probs after each of the last `keep_last` of them."""
        rows = self._timed_append(
            tokens,
            lambda new: self._context.decode(new, len(new) if keep_last is None else keep_last),
        )
        return log_softmax(rows) if len(rows) else rows

    def append_exact(self, tokens: Sequence[int]) -> np.ndarray:
        """Evaluate `tokens`; log-probs after each, the same however they are batched.

        A lone token is decoded with the one before it (a one-token batch gives other
        numbers than a longer one): about 1.6x a plain `append` of one token here, while
        a batch of several costs no more than `append_all`.
        """
        rows = self._timed_append(
            tokens, lambda new: self._context.evaluate(self.tokens + new, len(new))
        )
        return log_softmax(rows)

    def rewind(self, n_tokens: int) -> None:
        """Forget everything after the first `n_tokens` tokens."""
        want = min(n_tokens, self.n_tokens)
        if self._context.truncate(n_tokens) != want:
            raise RuntimeError(f"llama.cpp could not rewind the context to {n_tokens} tokens")

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

    def _timed_append(
        self, tokens: Sequence[int], evaluate: Callable[[list[int]], np.ndarray]
    ) -> np.ndarray:
        """Check that `tokens` fit after the context, evaluate them, time it."""
        tokens = list(tokens)
        if not tokens:
            raise ValueError("nothing to append")
        if self.n_tokens + len(tokens) > self.n_ctx:
            raise ContextFull(f"context of {self.n_ctx} tokens is full")
        started = time.perf_counter()
        rows = evaluate(tokens)
        self.timer.seconds += time.perf_counter() - started
        return rows

    def _load_prefix(self, prefix: list[int], key: str) -> None:
        """Bring the context to the private prefix: from the cache, else by prefill
        (and cache it). A cached state llama.cpp cannot read is a miss."""
        state = self.prefix_cache.get(key)
        if state is not None and state.tokens == prefix:
            try:
                self._context.restore(state.tokens, state.data)
                return
            except KVStateError:
                pass  # the context was cleared: prefill below replaces the bad entry
        self._context.evaluate(prefix, n_out=0)
        self.prefix_cache.put(key, KVState(tokens=prefix, data=self._context.save()))


def load_detokenizer(model_path: Path) -> Callable[[Sequence[int]], str]:
    """Token ids to text with only the model's vocabulary loaded (no weights)."""
    vocab = load_vocab(model_path)
    return lambda ids: vocab.detokenize(list(ids)).decode("utf-8", errors="replace")


class SmallModelPool:
    """A few llama.cpp contexts over one mmapped GGUF, so requests can overlap.

    Weights are shared through the page cache; each context has its own KV cache. The
    prefix cache is shared too, so a user's cached prefix helps whichever context runs.
    """

    def __init__(self, factory: Callable[[], SmallModel], size: int = 1) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one model")
        self.models = [factory() for _ in range(size)]
        self._idle = list(self.models)  # longest idle first
        self._changed = threading.Condition()

    @property
    def primary(self) -> SmallModel:
        return self.models[0]

    @property
    def idle(self) -> int:
        """How many models no request holds."""
        with self._changed:
            return len(self._idle)

    @contextmanager
    def acquire(
        self, prefer: SmallModel | None = None, tokens: Sequence[int] = ()
    ) -> Iterator[SmallModel]:
        """A model for the ``with``; waits while all are busy. ``prefer`` if it is idle
        (its context may still hold the caller's tokens), else the idle one whose
        context shares most of ``tokens``, else the one idle longest."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._idle))
            if any(m is prefer for m in self._idle):
                model = prefer
            else:  # max() keeps the first of equals: the one idle longest
                model = max(self._idle, key=lambda m: m.shared_prefix(tokens) if tokens else 0)
            self._idle.remove(model)
        try:
            yield model
        finally:
            with self._changed:
                self._idle.append(model)
                self._changed.notify()
