"""The engine interface. A new engine is one new file implementing ``Engine``.

Sessions and routes talk to engines through five calls: ``chat_prompt_tokens``, ``chat``,
``score``, ``release`` and the read-only facts (model id, vocabulary, fingerprint). An
engine implements ``chat`` as ``_generate``: the prompt and the token budget are worked
out here, once for every engine, into a ``Generation``. The OpenAI-compatible route calls
``stream_chat``, which an engine implements as ``chat_messages_tokens`` and ``_stream``,
on the same ``Generation``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from cloud_service.engines.streaming import ChatStream, SamplingOptions
from cloud_service.errors import ContextOverflow
from shared_protocol.fingerprint import tokenizer_fingerprint

ChatMessages = Sequence[dict[str, str]]  # [{"role": "system"|"user"|"assistant", "content"}]

# ``stop(text_so_far)``: a hint checked at line ends; True ends generation early.
StopHint = Callable[[str], bool]
# ``cancelled()``: True once nobody waits for the answer (the client went away); the
# engine then stops and raises ClientGone instead of computing on.
Cancelled = Callable[[], bool]


@dataclass(frozen=True)
class TopKRow:
    """Top-k next-token log-probs at one position, sorted descending (ties: lower id)."""

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]

    def head(self, k: int) -> TopKRow:
        return TopKRow(self.token_ids[:k], self.logprobs[:k])


class ChatResult(NamedTuple):
    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Generation:
    """One reply to generate, every input resolved: what ``_generate`` and ``_stream`` get.

    ``sampling.max_tokens`` is what was asked; ``budget`` is what the context leaves of
    it. ``stop`` is the line-end hint of ``chat`` (None for streams, whose stop strings
    are in ``sampling``).
    """

    prompt: list[int]
    budget: int
    sampling: SamplingOptions
    cancelled: Cancelled
    stop: StopHint | None = None


class Engine(ABC):
    """One loaded model. Implementations serialize their own calls (they may hold one
    native context), so callers can share an engine across threads."""

    name: ClassVar[str]
    capabilities: ClassVar[tuple[str, ...]] = ("sketch", "logits")
    # Requests worth computing at once; the app queues the rest (admission.py).
    max_concurrency: int = 1

    model_id: str
    vocab_size: int
    n_ctx: int

    def __init__(self) -> None:
        self._fingerprint: str | None = None
        self._fingerprint_lock = threading.Lock()

    @property
    def tokenizer_fingerprint(self) -> str:
        """sha256 over every token's bytes (special tokens rendered), in id order."""
        with self._fingerprint_lock:
            if self._fingerprint is None:
                self._fingerprint = tokenizer_fingerprint(self.token_pieces())
            return self._fingerprint

    @abstractmethod
    def token_pieces(self) -> Iterable[bytes]:
        """The bytes of each token id 0..vocab_size-1, special tokens as their text."""

    @abstractmethod
    def chat_prompt_tokens(self, system: str | None, user: str) -> list[int]:
        """The model's own chat template over one user turn, with the generation prompt."""

    def chat(
        self,
        system: str | None,
        user: str,
        max_tokens: int,
        temperature: float = 0.0,
        *,
        stop: StopHint | None = None,
        cancelled: Cancelled | None = None,
    ) -> ChatResult:
        """Generate a reply (greedy when temperature is 0), at most max_tokens tokens.

        ``stop(text_so_far)`` is a hint checked at line ends: True ends generation
        early. An engine that cannot call back mid-generation may ignore it.
        ``cancelled()`` is checked as generation goes; when True the engine raises
        ClientGone (cloud_service.errors) soon after.
        """
        prompt = self.chat_prompt_tokens(system, user)
        # seed 0: a sampled sketch is reproducible, on every engine.
        sampling = SamplingOptions(max_tokens=max_tokens, temperature=temperature, seed=0)
        job = self._generation(prompt, sampling, cancelled, stop)
        text, completion_tokens = self._generate(job)
        return ChatResult(text, len(prompt), completion_tokens)

    def stream_chat(
        self,
        messages: ChatMessages,
        options: SamplingOptions,
        *,
        cancelled: Cancelled | None = None,
    ) -> ChatStream:
        """A whole conversation through the chat template, generated as a text stream.

        Raises ContextOverflow when the prompt leaves no room for one token. Nothing is
        generated until the stream is read; ``cancelled()`` is checked as it goes, as in
        ``chat``. Close the stream (``ChatStream.close``) when it is not read to its end.
        """
        prompt = self.chat_messages_tokens(messages)
        return self._stream(self._generation(prompt, options, cancelled))

    def chat_messages_tokens(self, messages: ChatMessages) -> list[int]:
        """The chat template over a conversation, with the generation prompt."""
        raise NotImplementedError(f"the {self.name} engine does not serve chat completions")

    def _stream(self, job: Generation) -> ChatStream:
        """The reply as a lazy stream (at most ``job.budget`` tokens)."""
        raise NotImplementedError(f"the {self.name} engine does not serve chat completions")

    def _generation(
        self,
        prompt: list[int],
        sampling: SamplingOptions,
        cancelled: Cancelled | None,
        stop: StopHint | None = None,
    ) -> Generation:
        budget = self._chat_budget(len(prompt), sampling.max_tokens)
        return Generation(prompt, budget, sampling, cancelled or _never, stop)

    def _chat_budget(self, prompt_tokens: int, max_tokens: int) -> int:
        """How many tokens the reply may have: max_tokens, or what the context has left."""
        budget = min(max_tokens, self.n_ctx - prompt_tokens)
        if budget < 1:
            raise ContextOverflow(
                f"the prompt has {prompt_tokens} tokens; the context holds {self.n_ctx}"
            )
        return budget

    def _generate(self, job: Generation) -> tuple[str, int]:
        """The reply (at most ``job.budget`` tokens): its text and token count.

        Every engine implements this, unless it overrides ``chat`` as a whole (a
        wrapper around another engine does).
        """
        raise NotImplementedError

    @abstractmethod
    def score(self, key: str, tokens: Sequence[int], n_out: int, top_k: int) -> list[TopKRow]:
        """Top-k log-probs after each of the last ``n_out`` tokens of ``tokens``.

        ``key`` names a stream of calls whose token lists mostly extend each other (one
        session). An engine may keep state per key to skip the shared prefix; results
        must not depend on whether it did.
        """

    def propose(
        self, key: str, tokens: Sequence[int], n: int, top_k: int
    ) -> tuple[list[int], list[TopKRow]]:
        """The engine's own greedy continuation of ``tokens``, as a scored draft.

        Up to ``n`` tokens (fewer at end of generation, which is not included), and the
        top-k after ``tokens`` and after each proposed token: rows that must equal
        ``score(key, tokens + proposed, len(proposed) + 1, top_k)``. Only engines listing
        the "propose" capability implement it.
        """
        raise NotImplementedError(f"the {self.name} engine does not propose drafts")

    def release(self, key: str) -> None:  # noqa: B027 - optional hook, stateless engines skip it
        """Forget any state kept for ``key``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free native resources."""


def _never() -> bool:
    return False


def chat_messages(system: str | None, user: str) -> list[dict[str, str]]:
    """One user turn, after a system turn when there is a system prompt."""
    system_turn = [{"role": "system", "content": system}] if system else []
    return [*system_turn, {"role": "user", "content": user}]


def top_k_logprobs(logits: np.ndarray, k: int) -> TopKRow:
    """log_softmax over the full vocabulary, then the k best, sorted descending.

    Float64 keeps the normalizer exact enough that the edge can trust the missing mass.
    Ties break on the lower token id so that equal inputs give equal lists.
    """
    x = np.asarray(logits, dtype=np.float64)
    k = min(k, x.shape[0])
    peak = x.max()
    log_z = peak + np.log(np.exp(x - peak).sum())
    best = np.argpartition(-x, k - 1)[:k]
    best = best[np.lexsort((best, -x[best]))]
    return TopKRow(tuple(int(i) for i in best), tuple(float(x[i] - log_z) for i in best))
