"""The private prompt, assembled within a token budget: it always fits, and says what it left out.

The budget is the small model's context minus the answer's ``max_tokens``. Whatever the
request brings is needed whole: the system text, the app's system messages, the task and
the outline. If that alone does not fit, the request is refused (``PromptTooLong``), as
OpenAI refuses a prompt longer than the context. The user's data then fills what is left,
in this order, and a part that does not fit is left out rather than failing the request:

1. the profile fields, each clipped to ``field_chars`` (a field that still does not fit
   is clipped to the room left, or left out);
2. the earlier turns of the conversation, newest first (the oldest are dropped);
3. past writings in order of relevance to the task, each clipped to ``writing_chars``,
   at most ``writings`` of them.

Every cut text ends with " ..." and the ``BudgetReport`` (the response's
``cogenesis.budget``) counts the turns dropped, writings used and fields clipped.

Layout, in the model's chat template: [system: instructions + profile] [system: each of
the app's system messages] [the earlier turns] [user: writings + task + outline]. The
first message depends only on the profile, so its KV state is cached per user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from edge_agent.conversation import Conversation
from edge_agent.prompts import (
    FIELD_CHARS,
    OUTLINE_JOIN,
    WRITING_CHARS,
    WRITINGS,
    clip,
    outline_block,
    private_system_prompt,
    private_user_prompt,
    profile_line,
    writing_block,
)
from edge_agent.store.context import UserContext

Messages = list[dict[str, str]]
MIN_FIELD_TOKENS = 8  # a field clipped below this says nothing; it is left out


class ChatTokenizer(Protocol):
    """What the assembler needs of the small model (``SmallModel`` fits)."""

    def tokenize(self, text: str) -> list[int]: ...

    def render_chat(
        self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = True
    ) -> str: ...


class PromptTooLong(ValueError):
    """The request's own text (task, outline, system messages) and ``max_tokens``
    exceed the small model's context."""


@dataclass(frozen=True)
class BudgetLimits:
    field_chars: int = FIELD_CHARS
    writing_chars: int = WRITING_CHARS
    writings: int = WRITINGS


class BudgetReport(BaseModel):
    """What the budget let into the private prompt, and what it left out."""

    budget_tokens: int  # the model's context minus max_tokens
    prompt_tokens: int
    turns_used: int
    turns_dropped: int  # the oldest earlier turns
    writings_used: int
    writings_chosen: list[int]  # their places in the user's history, most relevant first
    writings_available: int
    writings_clipped: int
    fields_clipped: list[str]  # labels of profile fields cut short
    fields_dropped: list[str]  # labels of profile fields left out for lack of room


@dataclass(frozen=True)
class BudgetedPrompt:
    messages: Messages
    text: str  # rendered with the model's template, ready for the answer
    tokens: list[int]
    report: BudgetReport


def assemble(
    model: ChatTokenizer,
    ctx: UserContext,
    conversation: Conversation,
    *,
    budget: int,
    ranked: Sequence[int] = (),
    outline: Sequence[str] | None = None,
    limits: BudgetLimits = BudgetLimits(),
) -> BudgetedPrompt:
    """The private prompt of one request, at most ``budget`` tokens long.

    ``ranked`` lists indices into ``ctx.history``, most relevant first.
    """
    counter = _Counter(model)
    app_system = [{"role": "system", "content": text} for text in conversation.system]
    fields: list[str] = []
    turns: Messages = []
    writings: list[str] = []
    chosen: list[int] = []

    def messages() -> Messages:
        return [
            {"role": "system", "content": private_system_prompt(fields)},
            *app_system,
            *turns,
            {
                "role": "user",
                "content": private_user_prompt(conversation.task, outline, writings),
            },
        ]

    fixed = counter.prompt(messages())
    if fixed > budget:
        raise PromptTooLong(
            f"the task and its system messages need {fixed} tokens, but the small model's "
            f"context leaves {max(budget, 0)} after the answer's max_tokens"
        )
    room = budget - fixed - counter.slack
    clipped: list[str] = []
    dropped: list[str] = []
    for label, value in ctx.fields.items():
        if not value:
            continue
        line = profile_line(label, clip(value, limits.field_chars))
        cost = counter.text("\n" + line)
        if cost > room:
            line = _clip_to(counter, line, room)
            cost = counter.text("\n" + line) if line else 0
        if not line:
            dropped.append(label)
            continue
        if line != profile_line(label, value):
            clipped.append(label)
        fields.append(line)
        room -= cost

    earlier = list(conversation.turns)
    for turn in reversed(earlier):
        cost = counter.text(turn.content) + counter.per_message
        if cost > room:
            break
        turns.insert(0, {"role": turn.role, "content": turn.content})
        room -= cost

    history = ctx.history
    writings_clipped = 0
    for index in ranked:
        if len(writings) >= limits.writings:
            break
        title, text = history[index]
        block = writing_block(title, clip(text, limits.writing_chars))
        cost = counter.text("\n\n" + block)
        if cost > room:
            continue  # a shorter writing further down may still fit
        writings.append(block)
        chosen.append(index)
        writings_clipped += len(text) > limits.writing_chars
        room -= cost

    # Costs were counted piece by piece; the whole may tokenize a little differently.
    final = messages()
    text = model.render_chat(final)
    tokens = model.tokenize(text)
    while len(tokens) > budget and (writings or turns):
        if writings:
            writings.pop()
            chosen.pop()
        else:
            turns.pop(0)  # the oldest turn goes first
        final = messages()
        text = model.render_chat(final)
        tokens = model.tokenize(text)
    return BudgetedPrompt(
        final,
        text,
        tokens,
        BudgetReport(
            budget_tokens=budget,
            prompt_tokens=len(tokens),
            turns_used=len(turns),
            turns_dropped=len(earlier) - len(turns),
            writings_used=len(writings),
            writings_chosen=chosen,
            writings_available=len(history),
            writings_clipped=writings_clipped,
            fields_clipped=clipped,
            fields_dropped=dropped,
        ),
    )


def with_outline(
    model: ChatTokenizer, built: BudgetedPrompt, outline: Sequence[str]
) -> BudgetedPrompt:
    """``built`` (assembled without an outline) with ``outline`` at the end of its user
    turn, as ``assemble`` would place it; what the budget chose stays as it was, so the
    prompt up to the outline does not depend on it. The caller checks the length."""
    messages = _outlined(built, outline)
    text = model.render_chat(messages)
    tokens = model.tokenize(text)
    report = built.report.model_copy(update={"prompt_tokens": len(tokens)})
    return BudgetedPrompt(messages, text, tokens, report)


def outline_prefix_text(model: ChatTokenizer, built: BudgetedPrompt, points: Sequence[str]) -> str:
    """The text of ``with_outline(model, built, outline)`` up to the end of its first
    ``points``, for any outline that begins with them (the outline's intro when there
    are none yet): what can be evaluated before the rest of the outline exists."""
    messages = _outlined(built, points)
    content = messages[-1]["content"]
    text = model.render_chat(messages)
    return text[: text.rindex(content) + len(content)]


def _outlined(built: BudgetedPrompt, outline: Sequence[str]) -> Messages:
    *before, user = built.messages
    return [*before, {**user, "content": user["content"] + OUTLINE_JOIN + outline_block(outline)}]


class _Counter:
    """Token counts of prompt pieces with the model's own tokenizer and template."""

    slack = 8  # tokens kept free: pieces joined can tokenize longer than apart

    def __init__(self, model: ChatTokenizer) -> None:
        self._model = model
        empty = model.render_chat([{"role": "user", "content": ""}], add_generation_prompt=False)
        self.per_message = len(model.tokenize(empty))

    def text(self, text: str) -> int:
        return len(self._model.tokenize(text))

    def prompt(self, messages: Messages) -> int:
        return len(self._model.tokenize(self._model.render_chat(messages)))


def _clip_to(counter: _Counter, line: str, room: int) -> str:
    """``line`` clipped to about ``room`` tokens, or "" when that is too little to say."""
    if room < MIN_FIELD_TOKENS:
        return ""
    chars = len(line)
    while chars > 0:
        candidate = clip(line, chars)
        if counter.text("\n" + candidate) <= room:
            return candidate
        chars = int(chars * 0.8)
    return ""
