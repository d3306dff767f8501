"""Pydantic schemas at the store's boundary (REST layer, CLI, importer).

Inputs forbid unknown fields and cap every size, so a request cannot grow the store
without bound or smuggle a field nobody reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from edge_agent.store.context import ATTRIBUTE_BY_LABEL, PROFILE_FIELDS
from edge_agent.store.identity import USER_ID_PATTERN

MAX_SHORT_CHARS = 200
MAX_FIELD_CHARS = 4_000
MAX_TITLE_CHARS = 1_000
MAX_SAMPLE_CHARS = 20_000
MAX_HISTORY_ITEMS = 256
MAX_EXTRA_FIELDS = 32
MAX_TASKS = 1_000

UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_SHORT_CHARS)]
# Field values are single lines: the dataset's profile text is one "Label: value" per line.
FieldText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_FIELD_CHARS, pattern=r"^[^\n]*$")
]
ExtraKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_ \-]{0,63}$")]
TaskKind = Literal["main", "additional"]

PROFILE_ATTRIBUTES = tuple(attr for attr, _ in PROFILE_FIELDS)


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
    age: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None
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
        clashes = [key for key in extra if key in ATTRIBUTE_BY_LABEL or key in PROFILE_ATTRIBUTES]
        if clashes:
            raise ValueError(f"extra fields {clashes} are regular profile fields; set those")
        return extra


class ProfileIn(_ProfileFields):
    """A new profile. Without ``id`` one is derived from name, age, occupation, location."""

    id: UserId | None = None
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    history: list[WritingSampleIn] = Field(default_factory=list, max_length=MAX_HISTORY_ITEMS)


class ProfileUpdate(_ProfileFields):
    """A partial update: only the fields that are set change. ``extra`` and ``history``,
    when given, replace the stored ones entirely; set a field to null to clear it."""

    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
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
