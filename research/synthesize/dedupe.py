"""Near-duplicate removal: the first of two near-identical users or tasks is kept.

An LLM asked many times for "a person from this group" tends to return the same person;
rapidfuzz finds them: tasks by token-set ratio (word order and repeats ignored, so a
reworded title still matches), users by token-sort ratio of who they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from rapidfuzz import fuzz

T = TypeVar("T")

USER_THRESHOLD = 90.0
TASK_THRESHOLD = 88.0


def near_duplicates(
    entries: Sequence[T],
    text: Callable[[T], str],
    threshold: float,
    scorer: Callable[[str, str], float] = fuzz.token_set_ratio,
) -> tuple[list[T], list[tuple[T, T]]]:
    """(kept, [(dropped, the kept entry it duplicates)]), in input order."""
    kept: list[T] = []
    kept_texts: list[str] = []
    dropped: list[tuple[T, T]] = []
    for entry in entries:
        mine = text(entry).casefold()
        twin = next(
            (i for i, other in enumerate(kept_texts) if scorer(mine, other) >= threshold),
            None,
        )
        if twin is None:
            kept.append(entry)
            kept_texts.append(mine)
        else:
            dropped.append((entry, kept[twin]))
    return kept, dropped


def duplicate_users(profiles: Sequence[T], profile: Callable[[T], dict]):
    return near_duplicates(
        profiles, lambda p: user_signature(profile(p)), USER_THRESHOLD, fuzz.token_sort_ratio
    )


def duplicate_tasks(tasks: Sequence[T], task: Callable[[T], str]):
    return near_duplicates(tasks, task, TASK_THRESHOLD)


def user_signature(profile: dict) -> str:
    """Who someone is: name, occupation and place (their private facts vary too much)."""
    return f"{profile['name']} | {profile['occupation']} | {profile['location']}"
