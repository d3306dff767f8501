"""The private context store: profiles, writing history, tasks and the outbound ledger.

Everything here stays on the device. ``open_store()`` creates or upgrades the database.
"""

from edge_agent.store.context import PROFILE_FIELDS, UserContext, split_items
from edge_agent.store.database import data_dir, default_db_url
from edge_agent.store.errors import (
    DatasetFormatError,
    InvalidQuery,
    KeyNotFound,
    LedgerEntryNotFound,
    StoreError,
    UnexportableProfile,
    UserExists,
    UserNotFound,
)
from edge_agent.store.identity import derive_user_id
from edge_agent.store.keys import KeyRepository, NewKey
from edge_agent.store.ledger import LedgerRepository
from edge_agent.store.repository import DeletedRows, ImportCounts, ProfileRepository
from edge_agent.store.store import Store, open_store

__all__ = [
    "PROFILE_FIELDS",
    "DatasetFormatError",
    "DeletedRows",
    "ImportCounts",
    "InvalidQuery",
    "KeyNotFound",
    "KeyRepository",
    "LedgerEntryNotFound",
    "LedgerRepository",
    "NewKey",
    "ProfileRepository",
    "Store",
    "StoreError",
    "UnexportableProfile",
    "UserContext",
    "UserExists",
    "UserNotFound",
    "data_dir",
    "default_db_url",
    "derive_user_id",
    "open_store",
    "split_items",
]
