"""Numbered placeholders of one request, and the device-only way back to the true values.

Within a request the same value always becomes the same placeholder (``<PERSON_1>``),
wherever it is found: the task title, every outline point, the logits prefix. The cloud
can then keep two people apart without learning who they are, and the edge can put the
true values back into what the cloud returns (``restore``) before the small model reads
it. The mapping lives in this object only: it is never sent and never written to the
ledger, which records placeholders, lengths and digests.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

_PLACEHOLDER_RE = re.compile(r"<([A-Z][A-Z_]*?)_(\d+)>")


def _key(value: str) -> str:
    return " ".join(value.split()).casefold()


class Placeholders:
    """The placeholders handed out in one request (thread-safe; logits mode drafts in a
    worker thread)."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._values: dict[str, str] = {}
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    def name(self, entity_type: str, value: str) -> str:
        """The placeholder of ``value`` (case and spacing do not matter)."""
        key = (entity_type, _key(value))
        with self._lock:
            found = self._by_value.get(key)
            if found is None:
                self._counts[entity_type] += 1
                found = f"<{entity_type}_{self._counts[entity_type]}>"
                self._by_value[key] = found
                self._values[found] = value
            return found

    def restore(self, text: str) -> str:
        """``text`` with this request's placeholders replaced by their true values;
        placeholders it never handed out are left as they are."""
        return _PLACEHOLDER_RE.sub(lambda m: self._values.get(m.group(), m.group()), text)
