"""The two prompts of every request.

The private prompt (profile, writing history, task, outline) stays on the device. The
public prompt (the task's short title, no context) may leave after the guard has seen it.
The private system message depends only on the user's data, so its KV state can be
cached and reused across that user's requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.store.context import UserContext

PRIVATE_SYSTEM = (
    "You are a personal writing assistant. You write on behalf of the user described "
    "below, in the first person, in their voice and style, drawing on their profile and "
    "past writing where it fits the task. Write only the requested text."
)

PUBLIC_SYSTEM = "You are a helpful writing assistant."


@dataclass(frozen=True)
class PromptLimits:
    history_items: int = 4
    history_chars: int = 1200


def task_title(task: str) -> str:
    """The short title of a task: the text before the first ': ', as in the paper."""
    title = task.strip().split(": ", 1)[0].strip()
    return title or task.strip()


def private_system_prompt(ctx: UserContext, limits: PromptLimits = PromptLimits()) -> str:
    lines = [PRIVATE_SYSTEM, "", "## The user's profile"]
    for key, value in ctx.fields.items():
        if value:
            lines.append(f"{key.replace('_', ' ').capitalize()}: {value}")
    samples = list(ctx.history)[: limits.history_items]
    if samples:
        lines += ["", "## The user's past writing"]
        for title, text in samples:
            clipped = (
                text
                if len(text) <= limits.history_chars
                else (text[: limits.history_chars].rsplit(" ", 1)[0] + " ...")
            )
            lines += [f"### {title}", clipped]
    return "\n".join(lines)


def private_user_prompt(task: str, outline: Sequence[str] | None = None) -> str:
    if not outline:
        return f"Task: {task}"
    points = "\n".join(f"{i}. {p}" for i, p in enumerate(outline, 1))
    return (
        f"Task: {task}\n\nFollow this outline, filling it with details from my profile "
        f"and my own voice:\n{points}"
    )


def private_messages(
    ctx: UserContext,
    task: str,
    outline: Sequence[str] | None = None,
    limits: PromptLimits = PromptLimits(),
) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": private_system_prompt(ctx, limits)},
        {"role": "user", "content": private_user_prompt(task, outline)},
    ]


def public_messages(task: str) -> list[dict[str, str]]:
    """The context-free prompt of logits mode: the task title and nothing else."""
    return [
        {"role": "system", "content": PUBLIC_SYSTEM},
        {"role": "user", "content": task_title(task)},
    ]
