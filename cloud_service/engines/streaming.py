"""Chat generation as a stream of text pieces, with OpenAI's stop strings and sampling.

Engine-neutral: an engine supplies the token ids it samples and their bytes; this module
turns them into UTF-8 text, ends the stream at a stop string (never sending any of it,
even split across tokens) and counts tokens for the usage report.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingOptions:
    """What one chat request asks of the sampler (OpenAI's names and meanings)."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None  # None: not reproducible, as in OpenAI's API
    stop: tuple[str, ...] = ()


@dataclass
class ChatStream:
    """Iterate for the text pieces; ``finish_reason`` and the counts are set at the end.

    ``tokens`` yields sampled ids and stops by itself at end-of-generation (``"stop"``)
    or at the budget (``"length"``); ``ended_by_eog`` tells which.
    """

    prompt_tokens: int
    tokens: Iterable[int]
    token_bytes: Callable[[int], bytes]
    budget: int
    stop: tuple[str, ...] = ()
    completion_tokens: int = 0
    finish_reason: FinishReason | None = None
    _text: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""  # decoded text held back: it may be the start of a stop string
        hold = max((len(s) for s in self.stop), default=1) - 1
        for token in self.tokens:
            self.completion_tokens += 1
            pending += decoder.decode(self.token_bytes(token))
            cut = _first_stop(pending, self.stop)
            if cut is not None:
                yield from self._emit(pending[:cut])
                self.finish_reason = "stop"
                return
            if len(pending) > hold:
                yield from self._emit(pending[: len(pending) - hold])
                pending = pending[len(pending) - hold :]
        pending += decoder.decode(b"", final=True)
        cut = _first_stop(pending, self.stop)
        yield from self._emit(pending if cut is None else pending[:cut])
        if cut is not None or self.completion_tokens < self.budget:
            self.finish_reason = "stop"
        else:
            self.finish_reason = "length"

    def _emit(self, text: str) -> Iterator[str]:
        if text:
            self._text.append(text)
            yield text

    def close(self) -> None:
        """Stop generating (a client that left): the engine frees what the stream held.

        Call it from the thread that reads the stream, or once no read is running.
        """
        close = getattr(self.tokens, "close", None)
        if close is not None:
            close()

    def text(self) -> str:
        """Everything generated (runs the stream to its end if it has not run)."""
        if self.finish_reason is None:
            for _ in self:
                pass
        return "".join(self._text)


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None


def sample_token(
    logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator
) -> int:
    """Greedy at temperature 0; else softmax(logits / T) cut to the top_p nucleus."""
    if temperature <= 0:
        return int(np.argmax(logits))
    x = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(x - x.max())
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
        nucleus = np.zeros_like(p)
        nucleus[keep] = p[keep]
        p = nucleus / nucleus.sum()
    return int(rng.choice(len(p), p=p))
