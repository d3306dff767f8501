"""Trained fusion gates, picked by name from one configured folder.

A request names a gate (``"gate": "news"``), never a path: the edge reads
``<gates dir>/news.json`` and nothing else. Only regular files count, and a file is
opened without blocking and read with a size cap, so no name can make the edge wait on
a FIFO or a device, and errors never tell a caller what exists elsewhere on the disk.
Loaded gates are cached until their file changes.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from edge_agent.collab.gate import Gate, GateFileError

GATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
SUFFIX = ".json"
MAX_GATE_BYTES = 1 << 20  # a trained gate is a few kilobytes
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class GateNotFound(LookupError):
    """No usable gate of that name; ``available`` lists the ones there are."""

    def __init__(self, name: str | None, available: list[str]) -> None:
        listed = ", ".join(available) if available else "none"
        hint = "" if available else " (put trained gate files, NAME.json, in the gates folder)"
        head = "fusion 'gate' needs a gate name" if name is None else f"no gate named {name!r}"
        super().__init__(f"{head}; available gates: {listed}{hint}")
        self.name = name
        self.available = available


class GateLibrary:
    """The gates in one folder (which may not exist: then there are none).

    ``directory`` may be a function that finds the folder on first use (the default
    folder is in the data directory, which need not be created before a gate is asked).
    """

    def __init__(self, directory: Path | Callable[[], Path] | None) -> None:
        self._directory = directory
        self._cache: dict[str, tuple[tuple[int, int, int], Gate]] = {}
        self._lock = threading.Lock()

    @property
    def directory(self) -> Path | None:
        if callable(self._directory):
            self._directory = self._directory()
        return self._directory

    def names(self) -> list[str]:
        """Names of the regular ``NAME.json`` files in the folder, sorted."""
        directory = self.directory
        if directory is None:
            return []
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return []
        names = []
        for entry in entries:
            name = entry.name.removesuffix(SUFFIX)
            if entry.name.endswith(SUFFIX) and GATE_NAME.fullmatch(name) and _is_file(entry):
                names.append(name)
        return sorted(names)

    def get(self, name: str | None) -> Gate:
        """The gate called ``name``; GateNotFound (listing the names) if there is none,
        GateFileError if its file is not a usable gate."""
        directory = self.directory
        if name is None or not GATE_NAME.fullmatch(name) or directory is None:
            raise GateNotFound(name, self.names())
        try:
            fd = os.open(directory / f"{name}{SUFFIX}", _OPEN_FLAGS)
        except OSError:
            raise GateNotFound(name, self.names()) from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a FIFO, device or folder of that name
            os.close(fd)
            raise GateNotFound(name, self.names())
        with os.fdopen(fd, "rb") as handle:
            version = (info.st_ino, info.st_mtime_ns, info.st_size)
            with self._lock:
                cached = self._cache.get(name)
            if cached is not None and cached[0] == version:
                return cached[1]
            if info.st_size > MAX_GATE_BYTES:
                raise GateFileError(f"gate {name!r} is larger than {MAX_GATE_BYTES} bytes")
            raw = handle.read(MAX_GATE_BYTES + 1)
        try:
            gate = Gate.from_json(raw)
        except GateFileError as exc:
            raise GateFileError(f"gate {name!r} cannot be used: {exc}") from None
        with self._lock:
            self._cache[name] = (version, gate)
        return gate


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()  # follows a symlink, to a regular file only
    except OSError:
        return False
