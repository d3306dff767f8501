"""An append-only JSONL table keyed by a string: the checkpoints and caches of research runs.

Each line is ``{"key": ..., "value": ...}``. A rerun loads what is there and continues; a
line cut short by a crash is skipped (and rewritten by the rerun), and a key written twice
keeps its last value. Appends are flushed at once, so a stop loses at most the line being
written.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JsonlTable:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._rows: dict[str, Any] = {}
        self.skipped_lines = 0
        if self.path.exists():
            with self.path.open(encoding="utf-8") as lines:
                for line in lines:
                    self._load_line(line)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _load_line(self, line: str) -> None:
        if not line.strip():
            return
        try:
            row = json.loads(line)
            self._rows[str(row["key"])] = row["value"]
        except (ValueError, KeyError, TypeError):
            self.skipped_lines += 1

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._rows

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._rows.get(key, default)

    def items(self) -> Iterator[tuple[str, Any]]:
        with self._lock:
            return iter(list(self._rows.items()))

    def put(self, key: str, value: Any) -> None:
        line = json.dumps({"key": key, "value": value}, ensure_ascii=False)
        with self._lock:
            with self.path.open("a", encoding="utf-8") as out:
                if out.tell() and not _ends_with_newline(self.path):
                    out.write("\n")  # after a line cut short by a crash
                out.write(line + "\n")
                out.flush()
                os.fsync(out.fileno())
            self._rows[key] = value


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
