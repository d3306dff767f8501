"""The app's conversation as the edge uses it: system texts, earlier turns, the task.

All of it is private context. The last user message is the task; what may leave the
device is derived from the task alone (prompts.task_title), after the guard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str


@dataclass(frozen=True)
class Conversation:
    task: str
    system: tuple[str, ...] = ()  # the app's system and developer messages, in order
    turns: tuple[Turn, ...] = ()  # every other user and assistant message, in order

    @classmethod
    def of(cls, messages: Iterable[tuple[str, str]]) -> Conversation | None:
        """From ``(role, content)`` pairs; None when there is no non-blank user message.

        ``developer`` counts as ``system`` (OpenAI's newer name for it).
        """
        messages = list(messages)
        last_user = max((i for i, (role, _) in enumerate(messages) if role == "user"), default=-1)
        if last_user < 0 or not messages[last_user][1].strip():
            return None
        system = tuple(c for r, c in messages if r in ("system", "developer") and c.strip())
        turns = tuple(
            Turn(r, c)  # type: ignore[arg-type]
            for i, (r, c) in enumerate(messages)
            if r in ("user", "assistant") and i != last_user and c.strip()
        )
        return cls(messages[last_user][1].strip(), system, turns)

    def private_texts(self) -> list[str]:
        """Everything but the task: the context that must never leave."""
        return [*self.system, *(turn.content for turn in self.turns)]
