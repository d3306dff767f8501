"""Import and export of the CoGenesis dataset format.

A file is a JSON list of items, one per writing task::

    {"tid": "3_7_4",
     "conversations": [{"from": "user", "value": task}, {"from": "assistant", "value": ref}],
     "profile": [{"title": ..., "text": ..., "id": "0"}, ...],      # writing history
     "additional_profile": "Age: 47\\nName: ...\\nPrivacy_info: a; b; c",
     "additional_tasks": [task, ...]}

One stored user per person, whatever the number of items that describe them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

from edge_agent.store.context import LABEL_BY_ATTRIBUTE, PROFILE_FIELDS
from edge_agent.store.errors import DatasetFormatError, UnexportableProfile
from edge_agent.store.repository import ProfileRepository, user_id_for
from edge_agent.store.schemas import (
    ATTRIBUTE_BY_ANY_LABEL,
    PROFILE_ATTRIBUTES,
    ProfileImport,
    TaskOut,
    UserOut,
)

# The shape of an extra field's label (schemas.ExtraKey), checked here so an error can
# name the line instead of quoting a label that may be private text.
_EXTRA_LABEL = re.compile(r"[A-Za-z](?:[A-Za-z0-9_ \-]{0,62}[A-Za-z0-9_\-])?")
KNOWN_ITEM_KEYS = {"tid", "conversations", "profile", "additional_profile", "additional_tasks"}


@dataclass(frozen=True)
class ImportedUser:
    id: str
    name: str


@dataclass(frozen=True)
class ImportReport:
    source: str
    items: int
    people: int
    users: list[ImportedUser]  # one per person in the file, in first-seen order
    users_created: int
    users_updated: int
    users_unchanged: int
    samples_added: int
    tasks_added: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def user_ids(self) -> list[str]:
        return [user.id for user in self.users]


# -- the shape of one item, checked by pydantic ---------------------------------------------


class _Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speaker: Literal["user", "assistant"] = Field(alias="from")
    value: str = Field(min_length=1)


class _HistoryPiece(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    title: str = ""
    text: str = Field(min_length=1)
    id: str | None = None


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    tid: str = Field(min_length=1, max_length=64)
    conversations: list[_Turn]
    profile: list[_HistoryPiece]
    additional_profile: str
    additional_tasks: list[str] = Field(default_factory=list)


# -- import ---------------------------------------------------------------------------------


def import_file(
    path: str | Path, repo: ProfileRepository, progress: bool = True, merge: bool = False
) -> ImportReport:
    """Validate a whole dataset file, then store it in ONE transaction.

    Raises :class:`DatasetFormatError` naming the item and field at fault; in that case
    nothing is written. Error messages never quote the file's text: it is private.
    """
    return import_items(read_items(path), repo, progress=progress, source=str(path), merge=merge)


def read_items(path: str | Path) -> list[Any]:
    """The items of a dataset file as JSON values, not yet checked one by one
    (:func:`parse_item` does that). Raises :class:`DatasetFormatError`."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as error:
        raise DatasetFormatError(
            f"not UTF-8 text (bad byte at offset {error.start})", path=str(path)
        ) from error
    except OSError as error:
        raise DatasetFormatError(
            f"cannot read the file: {error.strerror or type(error).__name__}", path=str(path)
        ) from error
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DatasetFormatError(
            f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})",
            path=str(path),
        ) from error
    return _item_list(items, str(path))


def _item_list(items: Any, source: str) -> list[Any]:
    if isinstance(items, dict):
        raise DatasetFormatError(
            "expected a JSON list of items at the top level, got one object; wrap it in [ ]",
            path=source,
        )
    if not isinstance(items, list):
        raise DatasetFormatError(
            f"expected a JSON list of items at the top level, got {type(items).__name__}",
            path=source,
        )
    return items


def import_items(
    items: Any,
    repo: ProfileRepository,
    progress: bool = False,
    source: str = "<items>",
    merge: bool = False,
) -> ImportReport:
    """Like :func:`import_file`, for items already parsed from JSON (e.g. an upload).

    Two items about one person whose fields differ are an error naming both, unless
    ``merge`` is set: then the first item's values win and a warning says so.
    """
    started = time.perf_counter()
    items = _item_list(items, source)
    warnings: list[str] = []
    parsed = [
        parse_item(index, item, source, warnings)
        for index, item in enumerate(
            tqdm(items, desc="validating", unit="item", disable=not progress)
        )
    ]
    people = merge_people(parsed, warnings, merge=merge, source=source)
    counts = repo.import_profiles(
        tqdm(people, desc="importing", unit="person", disable=not progress)
    )
    return ImportReport(
        source=source,
        items=len(items),
        people=len(people),
        users=[ImportedUser(user_id_for(p.profile), p.profile.name) for p in people],
        users_created=counts.users_created,
        users_updated=counts.users_updated,
        users_unchanged=counts.users_unchanged,
        samples_added=counts.samples_added,
        tasks_added=counts.tasks_added,
        seconds=time.perf_counter() - started,
        warnings=warnings,
    )


def parse_item(
    index: int, item: Any, source: str = "<items>", warnings: list[str] | None = None
) -> ProfileImport:
    """One dataset item as a profile plus its tasks, or a DatasetFormatError."""
    if not isinstance(item, dict):
        raise DatasetFormatError(
            f"must be an object, not {type(item).__name__}", path=source, item=index
        )
    try:
        checked = _Item.model_validate(item)
    except ValidationError as error:
        first = error.errors()[0]
        raise DatasetFormatError(
            first["msg"], path=source, item=index, field=_dotted(first["loc"])
        ) from error
    unknown = sorted(set(item) - KNOWN_ITEM_KEYS)
    if unknown and warnings is not None:
        warnings.append(f"item {index}: ignored unknown keys {unknown}")

    fields = parse_profile_text(checked.additional_profile, index, source)
    turns = checked.conversations
    if turns and [t.speaker for t in turns] not in (["user"], ["user", "assistant"]):
        raise DatasetFormatError(
            f"expected [user] or [user, assistant] turns, got {[t.speaker for t in turns]}",
            path=source,
            item=index,
            field="conversations",
        )
    tasks: list[dict[str, Any]] = []
    if turns:
        reference = turns[1].value if len(turns) > 1 else None
        tasks.append({"instruction": turns[0].value, "reference": reference})
    tasks += [
        {"instruction": text, "kind": "additional"}
        for text in checked.additional_tasks
        if text.strip()
    ]
    history = [{"title": piece.title, "text": piece.text} for piece in checked.profile]
    try:
        return ProfileImport.model_validate(
            {
                "profile": {**fields, "history": history},
                "tasks": [{**task, "source_tid": checked.tid} for task in tasks],
            }
        )
    except ValidationError as error:
        first = error.errors()[0]
        raise DatasetFormatError(
            first["msg"], path=source, item=index, field=_import_field(first["loc"], bool(turns))
        ) from error


def parse_profile_text(text: str, index: int = 0, source: str = "<items>") -> dict[str, Any]:
    """``"Age: 47\\nName: Ann"`` -> ``{"age": "47", "name": "Ann", "extra": {...}}``.

    Labels are matched case-insensitively, and the column names work too
    ("private_information" for "Privacy_info"). Other labels become extra fields.
    """
    values: dict[str, Any] = {}
    extra: dict[str, str] = {}
    seen: set[str] = set()
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label, colon, value = line.partition(":")
        label = label.strip()
        where = f"additional_profile line {line_number}"
        if not colon or not label:
            raise DatasetFormatError(
                "expected 'Label: value' (no label and colon on this line)",
                path=source,
                item=index,
                field=where,
            )
        attribute = ATTRIBUTE_BY_ANY_LABEL.get(label.casefold())
        if attribute is None and not _EXTRA_LABEL.fullmatch(label):
            raise DatasetFormatError(
                "the label is not a field name (a letter, then letters, digits, spaces, "
                "'_' or '-', at most 64)",
                path=source,
                item=index,
                field=where,
            )
        key = attribute or label.casefold()
        if key in seen:
            raise DatasetFormatError(
                "this field appears on an earlier line too", path=source, item=index, field=where
            )
        seen.add(key)
        if attribute:
            values[attribute] = value.strip()
        else:
            extra[label] = value.strip()
    if not values.get("name"):
        raise DatasetFormatError(
            "the profile has no 'Name: ...' line; every person needs a name",
            path=source,
            item=index,
            field="additional_profile.Name",
        )
    return {**values, "extra": extra}


def merge_people(
    items: Sequence[ProfileImport],
    warnings: list[str],
    merge: bool = False,
    source: str = "<items>",
) -> list[ProfileImport]:
    """One entry per person: writing history and tasks merged, in first-seen order.

    Items about the same person normally carry the same fields (the dataset repeats the
    profile in each of a person's items). If two differ, that is a DatasetFormatError
    naming both items, unless ``merge``: then the first wins and a warning says so.
    """
    merged: dict[str, ProfileImport] = {}
    first_item: dict[str, int] = {}
    for index, item in enumerate(items):
        user_id = user_id_for(item.profile)
        if user_id not in merged:
            merged[user_id] = item
            first_item[user_id] = index
            continue
        kept = merged[user_id]
        fields = set(LABEL_BY_ATTRIBUTE) | {"extra"}
        differing = [
            LABEL_BY_ATTRIBUTE.get(name, name)
            for name in sorted(fields)
            if getattr(kept.profile, name) != getattr(item.profile, name)
        ]
        if differing and not merge:
            raise DatasetFormatError(
                f"describes the same person ({user_id}) as item {first_item[user_id]}, but "
                f"{', '.join(differing)} differ; make them agree, or ask for a merge "
                "(--merge, or merge=true) to keep the first item's values",
                path=source,
                item=index,
                field="additional_profile",
            )
        if differing:
            warnings.append(
                f"item {index}: same person as item {first_item[user_id]} ({user_id}) but "
                f"{', '.join(differing)} differ; kept item {first_item[user_id]}'s values"
            )
        history = list(kept.profile.history)
        seen = {(s.title, s.text) for s in history}
        history += [s for s in item.profile.history if (s.title, s.text) not in seen]
        merged[user_id] = ProfileImport(
            profile=kept.profile.model_copy(update={"history": history}),
            tasks=[*kept.tasks, *item.tasks],
        )
    return list(merged.values())


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _import_field(loc: Sequence[str | int], has_main_task: bool) -> str:
    """The dataset field behind a validation error of a ProfileImport."""
    if loc and loc[0] == "tasks" and len(loc) > 1:
        number = int(loc[1])
        if has_main_task and number == 0:
            return "conversations"
        return f"additional_tasks[{number - has_main_task}]"
    return _profile_field(loc[1:])


def _profile_field(loc: Sequence[str | int]) -> str:
    if loc and loc[0] == "history":
        return "profile" + _dotted(loc[1:])
    if loc and loc[0] == "extra":
        return f"additional_profile.{loc[1]}" if len(loc) > 1 else "additional_profile"
    label = LABEL_BY_ATTRIBUTE.get(str(loc[0]), str(loc[0])) if loc else ""
    return f"additional_profile.{label}"


# -- export ---------------------------------------------------------------------------------


def export_users(repo: ProfileRepository, user_ids: Sequence[str] | None = None) -> list[dict]:
    """Stored users as CoGenesis items: one item per main task (at least one per user)."""
    if user_ids is None:
        user_ids = [summary.id for summary in repo.list_users()]
    items: list[dict] = []
    for user_id in user_ids:
        items += user_items(repo.get_user(user_id), repo.list_tasks(user_id))
    return items


def user_items(user: UserOut, tasks: Sequence[TaskOut]) -> list[dict]:
    profile_text = render_profile_text(user)
    _check_reads_back(user, profile_text)
    history = [{"title": s.title, "text": s.text, "id": str(s.position)} for s in user.history]
    mains = [t for t in tasks if t.kind == "main"]
    # Additional tasks by the item they came from, so each goes back to that item.
    extras: dict[str | None, list[str]] = {}
    for task in tasks:
        if task.kind == "additional":
            extras.setdefault(task.source_tid, []).append(task.instruction)

    def item(tid: str, conversations: list[dict], additional: list[str]) -> dict:
        return {
            "tid": tid,
            "conversations": conversations,
            "profile": history,
            "additional_profile": profile_text,
            "additional_tasks": additional,
        }

    items = []
    for task in mains:
        conversations = [{"from": "user", "value": task.instruction}]
        if task.reference is not None:
            conversations.append({"from": "assistant", "value": task.reference})
        additional = extras.pop(task.source_tid, []) if task.source_tid is not None else []
        items.append(item(task.source_tid or f"{user.id}-{task.id}", conversations, additional))
    # Items that had only additional tasks, and a profile without tasks, round-trip too.
    items += [item(tid or user.id, [], additional) for tid, additional in extras.items()]
    return items or [item(user.id, [], [])]


def render_profile_text(user: UserOut) -> str:
    """The "Label: value" lines of a stored user, in the paper's order, extras last."""
    lines = [
        f"{label}: {value}"
        for attr, label in PROFILE_FIELDS
        if (value := getattr(user, attr)) is not None
    ]
    lines += [f"{key}: {value}" for key, value in user.extra.items()]
    return "\n".join(lines)


def _check_reads_back(user: UserOut, profile_text: str) -> None:
    """Refuse to export a profile that would import as something else.

    The API rejects such values now, but a store written by an older release may hold
    them (a line break in a short field, say). Names the fields, never their values.
    """
    try:
        parsed = parse_profile_text(profile_text)
    except DatasetFormatError:
        parsed = {}
    stored = {attr: getattr(user, attr) for attr in ("name", *PROFILE_ATTRIBUTES)}
    stored = {attr: value for attr, value in stored.items() if value is not None}
    read_back = {attr: parsed.get(attr) for attr in stored}
    wrong = [LABEL_BY_ATTRIBUTE.get(a, a) for a in stored if read_back[a] != stored[a]]
    extra = parsed.get("extra", {})
    wrong += [key for key, value in user.extra.items() if extra.get(key) != value]
    unexpected = (set(parsed) - set(stored) - {"extra"}) | (set(extra) - set(user.extra))
    if wrong or unexpected:
        raise UnexportableProfile(user.id, wrong or ["the profile text"])
