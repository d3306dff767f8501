"""Pydantic schemas at the store's boundary (REST layer, CLI, importer).

Inputs forbid unknown fields and cap every size, so a request cannot grow the store
without bound or smuggle a field nobody reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from edge_agent.store.context import PROFILE_FIELDS
from edge_agent.store.identity import USER_ID_PATTERN

MAX_SHORT_CHARS = 200
MAX_FIELD_CHARS = 4_000
MAX_TITLE_CHARS = 1_000
MAX_SAMPLE_CHARS = 20_000
MAX_HISTORY_ITEMS = 256
MAX_EXTRA_FIELDS = 32
MAX_TASKS = 1_000

# Every character str.splitlines() breaks on: the dataset's profile text is one
# "Label: value" per line, so a value holding any of them would read back as new fields.
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _single_line(value: str) -> str:
    if not LINE_BREAKS.isdisjoint(value):
        raise ValueError("must be a single line (line breaks are not allowed)")
    return value


def _strip(value: Any) -> Any:
    # Python's idea of whitespace, which the importer uses when it reads a line back
    # (it strips a few control characters that pydantic's strip_whitespace keeps).
    return value.strip() if isinstance(value, str) else value


def _line(max_length: int, min_length: int = 0) -> Any:
    """A stripped one-line string, as every field of the profile text must be."""
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length),
        BeforeValidator(_strip),  # runs first: before-validators wrap what precedes them
        AfterValidator(_single_line),
    ]


UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
NameText = _line(200, min_length=1)
AgeText = _line(32)
ShortText = _line(MAX_SHORT_CHARS)
FieldText = _line(MAX_FIELD_CHARS)
# No space at either end: the profile text is read back with the label stripped.
ExtraKey = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z](?:[A-Za-z0-9_ \-]{0,62}[A-Za-z0-9_\-])?$")
]
TaskKind = Literal["main", "additional"]

PROFILE_ATTRIBUTES = tuple(attr for attr, _ in PROFILE_FIELDS)
# What a label of the profile text means, whatever its case: the paper's labels and the
# column names both name a regular field.
ATTRIBUTE_BY_ANY_LABEL: dict[str, str] = {
    **{attr: attr for attr, _ in PROFILE_FIELDS},
    **{label.casefold(): attr for attr, label in PROFILE_FIELDS},
}


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class WritingSampleIn(StrictModel):
    title: Annotated[str, StringConstraints(max_length=MAX_TITLE_CHARS)] = ""
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SAMPLE_CHARS)]


class TaskIn(StrictModel):
    instruction: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SAMPLE_CHARS)]
    reference: Annotated[str, StringConstraints(max_length=MAX_SAMPLE_CHARS)] | None = None
    source_tid: Annotated[str, StringConstraints(max_length=64)] | None = None
    kind: TaskKind = "main"


class _ProfileFields(StrictModel):
    age: AgeText | None = None
    occupation: ShortText | None = None
    location: ShortText | None = None
    personal_traits: FieldText | None = None
    writing_style: FieldText | None = None
    private_information: FieldText | None = None
    smart_device_usage: FieldText | None = None
    assistant_usage: FieldText | None = None
    extra: dict[ExtraKey, FieldText] = Field(default_factory=dict, max_length=MAX_EXTRA_FIELDS)

    @field_validator("extra")
    @classmethod
    def _extra_keys_are_not_paper_fields(cls, extra: dict[str, str]) -> dict[str, str]:
        # Compared without case, as the importer reads labels: anything else would come
        # back from an export as another field.
        clashes = [key for key in extra if key.casefold() in ATTRIBUTE_BY_ANY_LABEL]
        if clashes:
            raise ValueError(f"extra fields {clashes} are regular profile fields; set those")
        folded = [key.casefold() for key in extra]
        if len(set(folded)) < len(folded):  # keys are the user's words: not quoted
            raise ValueError("two extra fields differ only in case; keep one")
        return extra


class ProfileIn(_ProfileFields):
    """A new profile. Without ``id`` one is derived from name, age, occupation, location."""

    id: UserId | None = None
    name: NameText
    history: list[WritingSampleIn] = Field(default_factory=list, max_length=MAX_HISTORY_ITEMS)


class ProfileUpdate(_ProfileFields):
    """A partial update: only the fields that are set change. ``extra`` and ``history``,
    when given, replace the stored ones entirely; set a field to null to clear it."""

    name: NameText | None = None
    history: list[WritingSampleIn] | None = Field(default=None, max_length=MAX_HISTORY_ITEMS)

    @model_validator(mode="after")
    def _name_cannot_be_cleared(self) -> ProfileUpdate:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be cleared")
        return self


class ProfileImport(StrictModel):
    """One person read from a dataset file: the profile and their tasks."""

    profile: ProfileIn
    tasks: list[TaskIn] = Field(default_factory=list, max_length=MAX_TASKS)


class WritingSampleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    position: int
    title: str
    text: str


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: TaskKind
    instruction: str
    reference: str | None
    source_tid: str | None


class UserSummary(BaseModel):
    id: str
    name: str
    data_version: int
    history_count: int
    task_count: int
    updated_at: datetime


class UserOut(BaseModel):
    id: str
    name: str
    age: str | None = None
    occupation: str | None = None
    location: str | None = None
    personal_traits: str | None = None
    writing_style: str | None = None
    private_information: str | None = None
    smart_device_usage: str | None = None
    assistant_usage: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)
    history: list[WritingSampleOut] = Field(default_factory=list)
    task_count: int = 0
    data_version: int
    created_at: datetime
    updated_at: datetime


# "interrupted": the edge stopped while sending; whether the bytes left is unknown.
LedgerStatus = Literal["sending", "ok", "error", "interrupted"]


class LedgerEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    user_id: str | None
    request_id: str | None
    mode: str
    endpoint: str
    method: str
    payload: bytes = Field(description="the exact bytes that were sent")
    bytes_up: int
    bytes_down: int | None
    status: LedgerStatus
    http_status: int | None
    error: str | None
    duration_ms: float | None
    guard_policy: str | None
    guard_findings: Any | None
    cloud_session: str | None = None
    chain_hash: str | None = Field(None, description="hash of this row's newest chain link")

    @property
    def payload_text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")


KeyScope = Literal["user", "admin"]


class KeyIn(StrictModel):
    """A key to create: a user key acts as one profile, an admin key manages everything."""

    scope: KeyScope
    user_id: UserId | None = Field(None, description="the profile a user key acts as")
    label: ShortText | None = Field(None, description="what the key is for, e.g. an app name")

    @model_validator(mode="after")
    def _user_matches_scope(self) -> KeyIn:
        if self.scope == "user" and self.user_id is None:
            raise ValueError("a user key needs user_id, the profile it acts as")
        if self.scope == "admin" and self.user_id is not None:
            raise ValueError("an admin key acts for every user; leave user_id out")
        return self


class KeyOut(BaseModel):
    """A key as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    scope: KeyScope
    user_id: str | None
    label: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
