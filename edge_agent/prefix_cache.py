"""A bounded cache of KV states for users' private prefixes.

The private prefix (system prompt, profile, writing history) is about 1,500 tokens and
takes seconds to prefill on a laptop CPU. Keeping its KV state lets a returning user
skip that. Keys include the user's data version, so any change to the profile or
history misses the cache by construction; `invalidate_user` also frees the memory.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KVState:
    """The KV cells saved after exactly `tokens` (`llama_runtime.context.LiveContext.save`)."""

    tokens: list[int]
    data: bytes


def prefix_key(user_id: str, data_version: int, prefix_text: str) -> str:
    digest = hashlib.sha256(prefix_text.encode("utf-8")).hexdigest()[:16]
    return f"{user_id}:{data_version}:{digest}"


class PrefixCache:
    """LRU in memory, optionally spilling to a directory on disk."""

    def __init__(self, max_entries: int = 8, disk_dir: Path | None = None) -> None:
        self.max_entries = max_entries
        self.disk_dir = Path(disk_dir) if disk_dir else None
        self._entries: OrderedDict[str, KVState] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        if self.disk_dir:
            self.disk_dir.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> KVState | None:
        with self._lock:
            state = self._entries.get(key)
            if state is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return state
        state = self._read_disk(key)
        with self._lock:
            if state is None:
                self.misses += 1
                return None
            self.hits += 1
            self._remember(key, state)
        return state

    def put(self, key: str, state: KVState) -> None:
        with self._lock:
            self._remember(key, state)
        self._write_disk(key, state)

    def invalidate_user(self, user_id: str) -> None:
        prefix = f"{user_id}:"
        with self._lock:
            for key in [k for k in self._entries if k.startswith(prefix)]:
                del self._entries[key]
        if self.disk_dir:
            for path in self.disk_dir.glob(f"{_file_stem(user_id)}*.kv"):
                path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._entries)

    def _remember(self, key: str, state: KVState) -> None:
        self._entries[key] = state
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _path(self, key: str) -> Path:
        assert self.disk_dir is not None
        user_id, _, rest = key.partition(":")
        return self.disk_dir / f"{_file_stem(user_id)}.{rest.replace(':', '.')}.kv"

    def _write_disk(self, key: str, state: KVState) -> None:
        if not self.disk_dir:
            return
        path = self._path(key)
        tmp = path.with_suffix(".tmp")
        header = len(state.tokens).to_bytes(4, "little")
        body = b"".join(t.to_bytes(4, "little") for t in state.tokens)
        tmp.write_bytes(header + body + state.data)
        tmp.replace(path)  # atomic: a crash never leaves a half-written state

    def _read_disk(self, key: str) -> KVState | None:
        if not self.disk_dir:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        raw = path.read_bytes()
        n = int.from_bytes(raw[:4], "little")
        tokens = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "little") for i in range(n)]
        return KVState(tokens=tokens, data=raw[4 + 4 * n :])


def _file_stem(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]
