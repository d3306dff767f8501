"""llama.cpp engine: one native context, per-session KV states saved in a small LRU.

Concurrency: the app's admission queue (admission.py) lets one request at a time use
the engine (``max_concurrency``), fairly across tenants, and sheds past its end. One
context rather than several: on a 2-core host two contexts of one thread each ran four
sketches 0.83x as fast as one context did serially (two contexts contend for the same
cores and memory bandwidth). If an operator admits more (``--engine-slots``), calls
interleave per token on the one context. Every chat, a sketch's or an OpenAI stream's,
generates in a lane of its own (``_tokens``, ``_chat_lane``): a KV key no other running
chat uses, so two chats never share a live context or a sampler, and never re-decode
each other's prompt, only swap saved states. A chat whose client went away stops at the
next token (``cancelled``); a stream that is closed gives its lane back.

Scoring uses the shared runtime's decode (`llama_runtime.context`): one pass over the
tokens the context has not seen yet, with logits requested only at the positions asked
for. ``create_completion`` is avoided for log-probs: its string keys collide on byte
tokens and its echo is off by one without BOS.

Results are batch-invariant (flash attention off, no one-token batches), so a session
that reuses its KV cache returns exactly what a fresh evaluation of its tokens returns.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloud_service.engines.base import (
    ChatMessages,
    Engine,
    Generation,
    TopKRow,
    chat_messages,
    top_k_logprobs,
)
from cloud_service.engines.streaming import ChatStream, sample_token
from cloud_service.errors import ClientGone, ContextOverflow, EngineUnavailable
from llama_runtime.chat_template import ChatTemplate
from llama_runtime.context import LiveContext
from llama_runtime.kv_state import KVStateError
from llama_runtime.model import ModelLoadError, load_model
from llama_runtime.vocab import end_of_generation_ids, token_pieces
from shared_protocol import PROPOSE_CAPABILITY

# Chat generation's keys: CHAT_KEY for lane 0, CHAT_KEY:n for lane n (one lane per chat
# running at once, streamed or not). Session ids are url-safe base64 and can never
# take this form.
CHAT_KEY = "\x00chat"


@dataclass(frozen=True)
class _SavedState:
    tokens: tuple[int, ...]
    kv: bytes  # LiveContext.save: KV cells only, no logits


class LlamaCppEngine(Engine):
    name = "llamacpp"
    capabilities = (*Engine.capabilities, PROPOSE_CAPABILITY)

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
        try:
            self._llm = load_model(path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch)
        except ModelLoadError as exc:
            raise EngineUnavailable(str(exc)) from exc
        self._context = LiveContext(self._llm)
        self.model_id = path.name.removesuffix(".gguf")
        self.vocab_size = self._llm.n_vocab()
        self.n_ctx = self._llm.n_ctx()
        self._lock = threading.RLock()
        self._live_key: str | None = None
        self._saved: OrderedDict[str, _SavedState] = OrderedDict()
        self.max_saved_states = max_saved_states
        self._template = ChatTemplate.of_model(self._llm)
        self._eog = end_of_generation_ids(self._llm)
        self._free_lanes: list[int] = []  # chat lanes not in use; lane 0 is CHAT_KEY
        self._lanes = 0

    # -- vocabulary and chat template -------------------------------------------------

    def token_pieces(self) -> Iterator[bytes]:
        return token_pieces(self._llm)

    def chat_prompt_tokens(self, system: str | None, user: str) -> list[int]:
        return self.chat_messages_tokens(chat_messages(system, user))

    def chat_messages_tokens(self, messages: ChatMessages) -> list[int]:
        text = self._template.render(list(messages))
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    # -- generation ---------------------------------------------------------------------

    def _generate(self, job: Generation) -> tuple[str, int]:
        out: list[int] = []
        with closing(self._tokens(job)) as tokens:
            for token in tokens:
                out.append(token)
                if (
                    job.stop is not None
                    and b"\n" in self._llm.detokenize([token])
                    and job.stop(self._text(out))
                ):
                    break
        return self._text(out), len(out)

    def _stream(self, job: Generation) -> ChatStream:
        return ChatStream(
            prompt_tokens=len(job.prompt),
            tokens=self._tokens(job),
            token_bytes=lambda token: self._llm.detokenize([token]),
            budget=job.budget,
            stop=job.sampling.stop,
        )

    def _tokens(self, job: Generation) -> Iterator[int]:
        """Sampled ids until end-of-generation or the budget, in a chat lane of its own.

        Lazy: the lane is taken at the first token and given back when the iterator ends
        or is closed. ``job.cancelled()`` is checked before every token (ClientGone).
        """
        options = job.sampling
        rng = np.random.default_rng(options.seed)
        out: list[int] = []
        with self._chat_lane() as key:
            while len(out) < job.budget:
                if job.cancelled():
                    raise ClientGone()
                # The lock is taken per token so that other admitted calls interleave.
                with self._lock:
                    self._activate(key)
                    (logits,) = self._forward([*job.prompt, *out], 1)
                token = sample_token(logits, options.temperature, options.top_p, rng)
                if token in self._eog:
                    return
                out.append(token)
                yield token

    @contextmanager
    def _chat_lane(self) -> Iterator[str]:
        """A chat key no other running chat uses: lane 0 when chats come one by one.

        A lane's KV state stays saved between chats (LRU), so the next chat on it
        decodes only past their shared prefix (the constant sketch system prompt, a
        conversation's earlier turns). Lanes are numbered from 0 and reused lowest
        first, so there are never more than the most chats that ran at once.
        """
        with self._lock:
            if self._free_lanes:
                lane = self._free_lanes.pop(0)
            else:
                lane, self._lanes = self._lanes, self._lanes + 1
        try:
            yield CHAT_KEY if lane == 0 else f"{CHAT_KEY}:{lane}"
        finally:
            with self._lock:
                self._free_lanes.append(lane)
                self._free_lanes.sort()

    def _text(self, tokens: list[int]) -> str:
        return self._llm.detokenize(tokens).decode("utf-8", errors="replace")

    # -- scoring ------------------------------------------------------------------------

    def score(self, key: str, tokens: Sequence[int], n_out: int, top_k: int) -> list[TopKRow]:
        if not 1 <= n_out <= len(tokens):
            raise ValueError("n_out must be between 1 and len(tokens)")
        with self._lock:
            self._activate(key)
            return [top_k_logprobs(row, top_k) for row in self._forward(tokens, n_out)]

    def propose(
        self, key: str, tokens: Sequence[int], n: int, top_k: int
    ) -> tuple[list[int], list[TopKRow]]:
        """Greedy decoding, one scored position at a time.

        Each position is ``score``d alone: the runtime then decodes the new token with
        the one before it (never a lone-token batch), so every row is exactly what
        scoring the whole proposal as a draft returns (decoding is batch-invariant), and
        each proposed token is the top-1 of the row before it. The lock is held
        throughout: no other session's call evicts this one's tokens mid-proposal.
        """
        out: list[int] = []
        with self._lock:
            rows = self.score(key, tokens, 1, top_k)
            while len(out) < n and rows[-1].token_ids[0] not in self._eog:
                out.append(rows[-1].token_ids[0])
                rows += self.score(key, [*tokens, *out], 1, top_k)
        return out, rows

    def release(self, key: str) -> None:
        with self._lock:
            self._saved.pop(key, None)
            if self._live_key == key:
                self._live_key = None
                self._context.clear()

    def close(self) -> None:
        with self._lock:
            self._saved.clear()
            self._llm.close()

    @property
    def saved_keys(self) -> list[str]:
        """Keys with a saved KV state, least recently used first (for tests and stats)."""
        with self._lock:
            return list(self._saved)

    @property
    def decoded_tokens(self) -> int:
        """Tokens decoded so far; a restored KV state decodes none (for tests and stats)."""
        return self._context.decoded_tokens

    # -- the live context -------------------------------------------------------------

    def _activate(self, key: str) -> None:
        """Make ``key`` own the live context, stashing the previous owner's KV bytes."""
        if key == self._live_key:
            return
        if self._live_key is not None and self._context.n_tokens and self.max_saved_states > 0:
            self._saved[self._live_key] = _SavedState(
                tuple(self._context.tokens), self._context.save()
            )
            self._saved.move_to_end(self._live_key)
            while len(self._saved) > self.max_saved_states:
                self._saved.popitem(last=False)
        self._context.clear()
        self._live_key = key
        saved = self._saved.pop(key, None)
        if saved is not None:
            try:
                self._context.restore(saved.tokens, saved.kv)
            except KVStateError:
                pass  # the context was cleared: the next forward re-evaluates
        # else: the state was evicted (or never saved); the next forward re-evaluates.

    def _forward(self, tokens: Sequence[int], n_out: int) -> np.ndarray:
        """Bring the live context to ``tokens`` and return logits after the last n_out."""
        if len(tokens) > self.n_ctx:
            raise ContextOverflow(f"{len(tokens)} tokens exceed the context of {self.n_ctx}")
        try:
            return self._context.evaluate(tokens, n_out)
        except Exception:
            # The runtime cleared the half-written cache; no key owns it any more.
            self._live_key = None
            raise
