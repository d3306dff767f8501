"""Tokenizing the private prompt and streaming the small model's text.

Shared by every mode: local, sketch and logits all start the small model on the private
prompt, reusing the cached KV state of the user's private prefix when there is one.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.prefix_cache import prefix_key
from edge_agent.prompts import PromptLimits, private_messages
from edge_agent.slm import SmallModel
from edge_agent.store.context import UserContext


@dataclass(frozen=True)
class PrivatePrompt:
    """The private prompt's tokens; the first `prefix_len` of them (the user's system
    message) may have a cached KV state under `prefix_key`."""

    tokens: list[int]
    prefix_len: int = 0
    prefix_key: str | None = None

    @classmethod
    def uncached(cls, tokens: Sequence[int]) -> PrivatePrompt:
        """A prompt without a cached prefix (evaluation, benchmarks, tests)."""
        return cls(list(tokens))


def build_private_prompt(
    slm: SmallModel,
    ctx: UserContext,
    task: str,
    outline: Sequence[str] | None = None,
    limits: PromptLimits = PromptLimits(),
) -> PrivatePrompt:
    messages = private_messages(ctx, task, outline, limits)
    text = slm.render_chat(messages)
    tokens = slm.tokenize(text)
    prefix_text = slm.render_chat(messages[:1], add_generation_prompt=False)
    if not text.startswith(prefix_text):
        return PrivatePrompt(tokens, 0, None)
    prefix_tokens = slm.tokenize(prefix_text)
    if tokens[: len(prefix_tokens)] != prefix_tokens:
        return PrivatePrompt(tokens, 0, None)  # the join re-tokenized: no safe cache
    key = prefix_key(ctx.user_id, ctx.data_version, prefix_text)
    return PrivatePrompt(tokens, len(prefix_tokens), key)


def start_private(slm: SmallModel, prompt: PrivatePrompt) -> np.ndarray:
    """Load the private prompt into the small model; next-token log-probs."""
    return slm.start(prompt.tokens, prefix_key=prompt.prefix_key, prefix_len=prompt.prefix_len)


class TextDecoder:
    """Token ids to text, holding back bytes of a UTF-8 character split across tokens."""

    def __init__(self, slm: SmallModel) -> None:
        self._slm = slm
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def feed(self, token_id: int) -> str:
        piece = self._decoder.decode(self._slm.detokenize([token_id]))
        self.text += piece
        return piece

    def flush(self) -> str:
        piece = self._decoder.decode(b"", final=True)
        self.text += piece
        return piece
