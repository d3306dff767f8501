"""What each step accepts, and why it rejects the rest.

Every reader takes the raw reply and returns ``(value, None)`` or ``(None, reason)``. A
reply is junk when it is not the requested shape, echoes the shape's placeholders, or
is degenerate (a loop, a fragment). Junk is counted and retried, never written.
"""

from __future__ import annotations

import re
import zlib
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from edge_agent.store.context import PROFILE_FIELDS
from research.synthesize.prompts import GROUP_EXAMPLE, PROFILE_EXAMPLE, TASKS_EXAMPLE
from research.synthesize.structured import json_object

Read = tuple[Any, None] | tuple[None, str]

# "<name>" from the shape echoed back, also cut off ("<group of"); or a bare "...".
_PLACEHOLDER = re.compile(r"<\s*[A-Za-z][^<>]{0,60}(?:>|$)|^\W*\.\.\.\W*$")
_CONTROL = re.compile(r"<\|[a-z_]+\|>|<\/?s>")
_NAME = re.compile(r"^[A-Z][\w'’.-]*(?: [A-Z][\w'’.-]*){1,3}$")
MAX_ITEMS = 8


def _clean(value: Any) -> str:
    """One line, no list separators: values end up in "Label: a; b" profile lines."""
    text = re.sub(r"\s+", " ", str(value)).strip().strip(",")
    return text.replace(";", ",")


def _items(value: Any) -> list[str]:
    """A list of distinct, clean items; a "a; b" string is read as a list too."""
    if isinstance(value, str):
        value = re.split(r"[;\n]", value)
    if not isinstance(value, list):
        raise ValueError("expected a list of strings")
    out: list[str] = []
    seen: set[str] = set()
    for item in value:
        if isinstance(item, dict | list):
            continue
        text = _clean(item)
        if 3 <= len(text) <= 240 and not _PLACEHOLDER.search(text) and text.casefold() not in seen:
            seen.add(text.casefold())
            out.append(text)
    if not out:
        raise ValueError("no usable item")
    return out[:MAX_ITEMS]


def _field(value: Any) -> str:
    text = _clean(value)
    if _PLACEHOLDER.search(text) or not 2 <= len(text) <= 160:
        raise ValueError("a placeholder or an empty value")
    return text


Items = Annotated[list[str], BeforeValidator(_items)]
Text = Annotated[str, BeforeValidator(_field)]


class Group(BaseModel):
    model_config = ConfigDict(extra="ignore")

    group: Text
    description: Text


class Profile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Text
    age: int = Field(ge=16, le=95)
    occupation: Text
    location: Text
    personal_traits: Items
    writing_style: Items
    private_information: Items
    smart_device_usage: Items
    assistant_usage: Items = Field(validation_alias="ai_assistant_usage")


def profile_text(profile: dict[str, Any]) -> str:
    """The CoGenesis ``additional_profile`` text: "Label: value" lines, items by "; "."""
    lines = []
    for key, label in PROFILE_FIELDS:
        value = profile[key]
        lines.append(f"{label}: {'; '.join(value) if isinstance(value, list) else value}")
    return "\n".join(lines)


def _model(text: str, model: type[BaseModel]) -> Read:
    found = json_object(text)
    if found is None:
        return None, "no JSON object"
    try:
        return model.model_validate(found).model_dump(), None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "object"
        return None, f"{where}: {first['msg']}"


def read_group(text: str) -> Read:
    value, reason = _model(text, Group)
    if value is not None and value["group"].casefold() == GROUP_EXAMPLE["group"].casefold():
        return None, "group: the prompt's example copied"
    return value, reason


def read_profile(text: str) -> Read:
    value, reason = _model(text, Profile)
    if value is None:
        return value, reason
    if not _NAME.match(value["name"]):
        return None, "name: not a first and last name"
    if value["name"].casefold() == PROFILE_EXAMPLE["name"].casefold():
        return None, "name: the prompt's example copied"
    return value, reason


_TASK = re.compile(r"^(?P<title>[^:\n]{3,120}):\s*(?P<what>\S.{9,})$")


def read_tasks(text: str, need: int) -> Read:
    """At least ``need`` distinct "Title: description" tasks (more are kept, up to 2x)."""
    found = json_object(text)
    if found is None:
        return None, "no JSON object"
    raw = found.get("tasks")
    if not isinstance(raw, list):
        return None, "tasks: not a list"
    tasks: list[str] = []
    for item in raw:
        if isinstance(item, dict):  # {"title": ..., "description": ...}
            item = f"{item.get('title', '')}: {item.get('description', '')}"
        task = re.sub(r"\s+", " ", str(item)).strip()
        match = _TASK.match(task)
        copied = any(task.startswith(example[:40]) for example in TASKS_EXAMPLE)
        if match and not copied and not _PLACEHOLDER.search(task) and task not in tasks:
            tasks.append(f"{match['title'].strip()}: {match['what'].strip()}")
    if len(tasks) < need:
        return None, f"tasks: {len(tasks)} usable, {need} needed"
    return tasks[: 2 * need], None


def read_text(text: str, task: str, min_chars: int) -> Read:
    body = text.strip()
    if _CONTROL.search(body):
        return None, "control tokens in the text"
    if len(body) < min_chars:
        return None, f"text: {len(body)} characters, {min_chars} needed"
    if body.lstrip().startswith(("{", "[")):
        return None, "text: JSON instead of prose"
    if _PLACEHOLDER.search(body[:200]):
        return None, "text: placeholders"
    if task.strip().casefold() in body.casefold() and len(body) < 2 * len(task):
        return None, "text: the task echoed back"
    if is_repetitive(body):
        return None, "text: repeats itself"
    return body, None


def is_repetitive(text: str) -> bool:
    """A generation loop: the text compresses far better than prose does (~0.4+)."""
    data = text.encode("utf-8")
    if len(data) < 200:
        words = text.split()
        return len(words) >= 8 and len(set(words)) / len(words) < 0.4
    return len(zlib.compress(data)) / len(data) < 0.25
