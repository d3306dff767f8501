"""Removing control-token text from chat message content.

Rendered prompts are tokenized with special tokens parsed, so a literal "<|im_end|>" in
a message would end its turn and let the content open a turn of its own. Both engines and
the edge strip such text before rendering. Needs no llama.cpp: the vLLM engine uses it
with its tokenizer's special tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence


class ControlTextFilter:
    """Drops every occurrence of the given control-token texts, longest first."""

    def __init__(self, texts: Iterable[str]) -> None:
        # One-character texts are left alone: they would eat ordinary text.
        ordered = sorted({t for t in texts if len(t) > 1}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def scrub(self, content: str) -> str:
        if self._pattern is None:
            return content
        # Repeat: removing "<|im_end|>" from "<|im_<|im_end|>end|>" leaves "<|im_end|>".
        while True:
            content, removed = self._pattern.subn("", content)
            if not removed:
                return content

    def clean(self, messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
        """Copies of `messages` with control text removed from each content."""
        return [{**m, "content": self.scrub(m["content"])} for m in messages]
