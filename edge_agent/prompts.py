"""The texts of the two prompts of every request.

The private prompt (profile, past writings, the conversation, task and outline) stays on
the device; ``prompt_budget`` fits it into the small model's context. The public prompt
(the task's short title, no context) may leave after the guard has seen it. The private
system message depends only on the user's profile, so its KV state can be cached and
reused across that user's requests.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.store.context import UserContext

PRIVATE_SYSTEM = (
    "You are a personal writing assistant. You write on behalf of the user described "
    "below, in the first person, in their voice and style, drawing on their profile and "
    "past writing where it fits the task. Write only the requested text."
)
PROFILE_HEADING = "## The user's profile"
WRITINGS_HEADING = "## My past writing that may help"
CLIPPED = " ..."  # ends every text the budget cut short

# Defaults of the budget (settings override them): characters kept of each profile field
# and each past writing, and how many writings at most.
FIELD_CHARS = 1_000
WRITING_CHARS = 1_200
WRITINGS = 4

PUBLIC_SYSTEM = "You are a helpful writing assistant."
OUTLINE_JOIN = "\n\n"  # between the parts of the user turn
OUTLINE_INTRO = "Follow this outline, filling it with details from my profile and my own voice:"


def task_title(task: str) -> str:
    """The short title of a task: the text before the first ': ', as in the paper."""
    title = task.strip().split(": ", 1)[0].strip()
    return title or task.strip()


def clip(text: str, chars: int) -> str:
    """``text`` cut to at most ``chars`` characters at a word boundary, marked as cut."""
    if len(text) <= chars:
        return text
    room = max(chars - len(CLIPPED), 0)
    cut = text[:room].rsplit(" ", 1)[0] if " " in text[:room] else text[:room]
    return cut.rstrip() + CLIPPED


def profile_line(label: str, value: str) -> str:
    return f"{label.replace('_', ' ').capitalize()}: {value}"


def private_system_prompt(profile_lines: Sequence[str]) -> str:
    lines = [PRIVATE_SYSTEM]
    if profile_lines:
        lines += ["", PROFILE_HEADING, *profile_lines]
    return "\n".join(lines)


def writing_block(title: str, text: str) -> str:
    return f"### {title}\n{text}" if title else text


def private_user_prompt(
    task: str, outline: Sequence[str] | None = None, writings: Sequence[str] = ()
) -> str:
    parts = []
    if writings:
        parts.append("\n\n".join([WRITINGS_HEADING, *writings]))
    parts.append(f"Task: {task}")
    if outline:
        parts.append(outline_block(outline))
    return OUTLINE_JOIN.join(parts)


def outline_block(outline: Sequence[str]) -> str:
    """The outline's part of the user turn, its last part (``OUTLINE_JOIN`` before it):
    a prompt can be evaluated up to it before the outline exists, then point by point."""
    points = "\n".join(f"{i}. {p}" for i, p in enumerate(outline, 1))
    return f"{OUTLINE_INTRO}\n{points}"


def private_messages(
    ctx: UserContext, task: str, outline: Sequence[str] | None = None
) -> list[dict[str, str]]:
    """A private prompt without a budget or a conversation (dataset building): the
    whole profile and the first writings, each clipped as a request's would be."""
    lines = [profile_line(k, clip(v, FIELD_CHARS)) for k, v in ctx.fields.items() if v]
    writings = [writing_block(t, clip(x, WRITING_CHARS)) for t, x in ctx.history[:WRITINGS]]
    return [
        {"role": "system", "content": private_system_prompt(lines)},
        {"role": "user", "content": private_user_prompt(task, outline, writings)},
    ]


def public_messages(task: str) -> list[dict[str, str]]:
    """The context-free prompt of logits mode: the task title and nothing else."""
    return [
        {"role": "system", "content": PUBLIC_SYSTEM},
        {"role": "user", "content": task_title(task)},
    ]
