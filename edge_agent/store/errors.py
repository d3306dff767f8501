"""Errors the private store raises. Each says what went wrong and what to do about it."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for every error of the private context store."""


class UserNotFound(StoreError, LookupError):
    def __init__(self, user_id: str) -> None:
        super().__init__(
            f"no profile with id {user_id!r}; list them with `cogenesis profiles list`"
        )
        self.user_id = user_id


class UserExists(StoreError):
    def __init__(self, user_id: str) -> None:
        super().__init__(
            f"a profile with id {user_id!r} already exists; update it instead, or pass another id"
        )
        self.user_id = user_id


class LedgerEntryNotFound(StoreError, LookupError):
    def __init__(self, entry_id: int) -> None:
        super().__init__(f"no ledger entry with id {entry_id}")
        self.entry_id = entry_id


class LedgerEntryFinished(StoreError):
    def __init__(self, entry_id: int, status: str) -> None:
        super().__init__(f"ledger entry {entry_id} already ended ({status}); it cannot end twice")
        self.entry_id = entry_id
        self.status = status


class KeyNotFound(StoreError, LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key with id {key_id!r}; list them with `cogenesis keys list`")
        self.key_id = key_id


class InvalidQuery(StoreError, ValueError):
    """A query the store cannot answer, e.g. a time that is not a number of seconds."""


class UnexportableProfile(StoreError, ValueError):
    """A stored profile the CoGenesis format cannot carry as it is (from an older release)."""

    def __init__(self, user_id: str, fields: list[str]) -> None:
        super().__init__(
            f"profile {user_id!r} cannot be exported: {', '.join(fields)} would not read back "
            "as stored (a line break in a one-line field, say); edit those fields and "
            "export again"
        )
        self.user_id = user_id
        self.fields = fields


class DatasetFormatError(StoreError, ValueError):
    """A CoGenesis dataset file is malformed. Nothing was written.

    ``item`` is the 0-based index of the bad item (None for file-level problems) and
    ``field`` the path of the bad field inside it, e.g. ``profile[2].text``.
    """

    def __init__(
        self, message: str, *, path: str | None = None, item: int | None = None, field: str = ""
    ) -> None:
        where = []
        if path:
            where.append(str(path))
        if item is not None:
            where.append(f"item {item}")
        if field:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.item = item
        self.field = field
