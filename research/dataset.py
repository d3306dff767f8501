"""Writing tasks of a CoGenesis-format dataset, read with the store's strict parser.

Each item becomes one task: the person's private context, exactly as the edge would
load it from the store, the instruction and the reference answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge_agent.prompts import private_messages, public_messages
from edge_agent.store.cogenesis_format import parse_item, read_items
from edge_agent.store.context import PROFILE_FIELDS, UserContext
from edge_agent.store.repository import user_id_for
from edge_agent.store.schemas import ProfileIn


@dataclass(frozen=True)
class DatasetTask:
    tid: str
    context: UserContext
    instruction: str
    reference: str | None  # None when the item has no assistant turn


class PromptModel(Protocol):
    """What building the prompts needs of the small model."""

    def render_chat(self, messages: list[dict[str, str]]) -> str: ...

    def tokenize(self, text: str) -> list[int]: ...


BuildPrompts = Callable[[DatasetTask], tuple[Sequence[int], "str | Sequence[int]"]]
"""A task's private prompt (token ids) and public prompt (text or token ids)."""


def load_tasks(path: str | Path, max_tasks: int | None = None) -> list[DatasetTask]:
    """The tasks of a dataset file, in file order; items without a task are left out.

    The whole file is checked first: a malformed item raises `DatasetFormatError`
    naming the item and field, as `cogenesis profiles import` does.
    """
    source = str(path)
    tasks: list[DatasetTask] = []
    for index, item in enumerate(read_items(path)):
        parsed = parse_item(index, item, source)
        main = next((t for t in parsed.tasks if t.kind == "main"), None)
        if main is not None:
            tid = main.source_tid or str(index)
            tasks.append(
                DatasetTask(tid, context_of(parsed.profile), main.instruction, main.reference)
            )
    return tasks[:max_tasks] if max_tasks else tasks


def context_of(profile: ProfileIn) -> UserContext:
    """The context the store would load for this profile (see ProfileRepository)."""
    fields = {
        label: value
        for attr, label in PROFILE_FIELDS
        if (value := getattr(profile, attr)) not in (None, "")
    }
    fields.update(profile.extra)
    return UserContext(
        user_id=user_id_for(profile),
        name=profile.name,
        fields=fields,
        history=tuple((sample.title, sample.text) for sample in profile.history),
    )


def task_prompts(small_model: PromptModel) -> BuildPrompts:
    """Both prompts of a task, built with edge_agent.prompts as a request would be.

    The public prompt is returned as token ids rendered with the model's own template
    (system + the task's title), identical on both ends since tokenizers match.
    """

    def build(task: DatasetTask) -> tuple[list[int], list[int]]:
        private = small_model.render_chat(private_messages(task.context, task.instruction))
        public = small_model.render_chat(public_messages(task.instruction))
        return small_model.tokenize(private), small_model.tokenize(public)

    return build
