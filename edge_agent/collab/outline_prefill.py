"""Sketch mode, edge half, while the outline streams: evaluate the private prompt as far
as it is known, so that when the outline is complete only its last tokens remain.

The outline is the end of the user turn (``prompts.outline_block``), and what the budget
chose does not depend on it (``prompt_budget.with_outline``). So the prompt can be
evaluated up to the outline before any point exists (profile prefix from the cache,
writings, conversation, task), then point by point. The last few tokens of each partial
text are held back: they may tokenize differently once more text follows. The fill
then starts from the whole prompt, which keeps whatever of the context matches it and
evaluates the rest; a mismatch, or an outline that failed, costs time, never tokens.

A model is held only while it evaluates. Between points it goes back to the pool for
other requests, and is asked for again by preference (first, the model whose context
holds most of the prompt: a returning user's may still be there); if another request
used it meanwhile, the fill re-evaluates from what is still shared (the prefix cache at
least).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edge_agent.collab.private import PrivatePrompt, cached_prefix
from edge_agent.prompt_budget import BudgetedPrompt, outline_prefix_text
from edge_agent.slm import SmallModel, SmallModelPool
from edge_agent.store.context import UserContext

# Tokens at the end of a partial text left for later: a word cut at a point's end can
# merge with what follows it.
HOLD_BACK_TOKENS = 2


class OutlinePrefill:
    def __init__(
        self,
        pool: SmallModelPool,
        ctx: UserContext,
        base: Callable[[SmallModel], BudgetedPrompt],
    ) -> None:
        """``base(slm)``: the private prompt without an outline, as the fill builds it."""
        self._pool = pool
        self._ctx = ctx
        self._base = base
        self.model: SmallModel | None = None  # the context last evaluated into
        self.seconds = 0.0  # in the small model
        self.evaluated: list[int] = []  # the tokens last brought into that context
        self.outline_free: BudgetedPrompt | None = None  # the prompt before the outline
        self._cached = PrivatePrompt([])

    def advance(self, points: Sequence[str]) -> None:
        """Evaluate the prompt up to the end of ``points``, the outline so far."""
        # Tokenizing needs no context (every model of the pool has the same vocabulary):
        # the tokens choose the model, the one whose context holds most of them.
        tokenizer = self._pool.primary
        if self.outline_free is None:  # it does not depend on the outline: built once
            self.outline_free = self._base(tokenizer)
            self._cached = cached_prefix(tokenizer, self._ctx, self.outline_free)
        built, prompt = self.outline_free, self._cached
        text = outline_prefix_text(tokenizer, built, points)
        tokens = tokenizer.tokenize(text)[:-HOLD_BACK_TOKENS]
        with self._pool.acquire(prefer=self.model, tokens=tokens) as slm, slm.lock:
            self.model = slm
            if len(tokens) <= slm.shared_prefix(tokens):
                return  # nothing new (a point that tokenized into the held-back tail)
            before = slm.timer.seconds
            slm.start(tokens, prefix_key=prompt.prefix_key, prefix_len=prompt.prefix_len)
            self.seconds += slm.timer.seconds - before
            self.evaluated = tokens
