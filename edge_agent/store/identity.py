"""Stable user ids derived from who a person is, so importing a file twice is a no-op."""

from __future__ import annotations

import hashlib
import re
import unicodedata

USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


def normalize(value: str | None) -> str:
    """Case-, accent-form- and whitespace-insensitive form of a profile value."""
    text = unicodedata.normalize("NFKC", value or "")
    return re.sub(r"\s+", " ", text).strip().casefold()


def derive_user_id(
    name: str, age: str | None = None, occupation: str | None = None, location: str | None = None
) -> str:
    """``u_`` + 12 hex digits of sha256 over the normalized identity fields.

    Name and age alone are not enough: the CoGenesis dev set holds different people who
    share both (two 37-year-old "Elena Torres", a founder and a developer), so occupation
    and location are part of the identity too.
    """
    key = "\x1f".join(normalize(part) for part in (name, age, occupation, location))
    return "u_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
