"""Structured answers from an LLM: the JSON object in a reply, repaired if need be.

Small models wrap JSON in prose, cut it off at the token budget or leave a trailing
comma; ``json_repair`` mends those. What cannot be read as an object is junk (None).
"""

from __future__ import annotations

from typing import Any

import json_repair


def json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (repaired), or None."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        found = json_repair.repair_json(text[start:], return_objects=True)
    except (ValueError, RecursionError):
        return None
    if isinstance(found, list):
        found = next((item for item in found if isinstance(item, dict)), None)
    return found if isinstance(found, dict) and found else None
