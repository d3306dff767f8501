"""The read-only view of one user's private context that prompts and the guard consume.

Profile fields are keyed by the labels of the CoGenesis data ("Age", "Name", ...), in the
order the paper's profile text uses, so ``profile_text()`` reproduces that text exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

# (column attribute on the User row, label in the CoGenesis "additional_profile" text)
PROFILE_FIELDS: tuple[tuple[str, str], ...] = (
    ("age", "Age"),
    ("name", "Name"),
    ("occupation", "Occupation"),
    ("location", "Location"),
    ("personal_traits", "Personal_traits"),
    ("writing_style", "Writing_style"),
    ("private_information", "Privacy_info"),
    ("smart_device_usage", "Smart_device_usage"),
    ("assistant_usage", "Ai_assistant_usage"),
)
LABEL_BY_ATTRIBUTE: dict[str, str] = dict(PROFILE_FIELDS)


def split_items(value: str) -> list[str]:
    """The items of a multi-item value ("Tech-savvy; Natural leader"), stripped."""
    return [item.strip() for item in value.split(";") if item.strip()]


@dataclass(frozen=True)
class UserContext:
    """Everything private about one user that the edge may put into a private prompt.

    ``data_version`` grows with every change of the profile or history. It restarts at 1
    if a user is deleted and created again, so caches should key on ``cache_key``, which
    also includes a hash of the content.
    """

    user_id: str
    name: str
    fields: dict[str, str] = field(hash=False)
    history: tuple[tuple[str, str], ...] = ()
    data_version: int = 1

    def profile_text(self) -> str:
        """The profile as "Label: value" lines, like the dataset's ``additional_profile``."""
        return "\n".join(f"{label}: {value}" for label, value in self.fields.items())

    def items(self, label: str) -> list[str]:
        """The "; "-separated items of one field, e.g. ``ctx.items("Privacy_info")``."""
        return split_items(self.fields.get(label, ""))

    @cached_property
    def content_hash(self) -> str:
        """sha256 (16 hex digits) over fields and history."""
        blob = json.dumps([self.fields, self.history], ensure_ascii=False, sort_keys=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    @property
    def cache_key(self) -> str:
        """A key that changes whenever the context changes, even across delete + re-create."""
        return f"{self.user_id}:{self.data_version}:{self.content_hash}"
